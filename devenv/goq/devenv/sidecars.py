"""Sidecars as local processes, for tests, benchmarks and demos outside Kubernetes.

Each sidecar gets free loopback ports, a static peer map naming the others, and a stable instance
name, so that a restarted process takes back its own records at once (as a pod with the same name
would). ``kill`` is ``kill -9``; ``stop`` is SIGTERM and a clean shutdown.
"""

import base64
import logging
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from goq.devenv import processes
from goq.devenv.errors import DevEnvError
from goq.devenv.ports import free_ports

log = logging.getLogger("goq.devenv")
PORT_ATTEMPTS = 3


def sidecar_command() -> list[str]:
    """How to run the installed ``goq-sidecar``."""
    script = Path(sys.executable).with_name("goq-sidecar")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from goq.cli.sidecar import main; sys.exit(main())"]


def hmac_keys(keys: Mapping[str, bytes]) -> str:
    """``GOQ_HMAC_KEYS`` for ``keys``."""
    return ",".join(f"{key_id}={base64.b64encode(key).decode()}" for key_id, key in keys.items())


@dataclass
class SidecarProcess:
    """One ``goq-sidecar`` process on loopback, restartable on the same ports and data."""

    identity: str
    workdir: Path
    env: dict[str, str]
    namespace: str = "default"
    instance: str = ""
    """Its replica name (``GOQ_INSTANCE``, and the name of its log and spill directory); empty:
    ``<identity>-0``, logging to ``<identity>.log``."""
    host: str = "127.0.0.1"
    """The loopback address its peer port listens on: replicas found through DNS differ by address only."""
    peer_port: int = 0
    grpc_port: int = 0
    health_port: int = 0
    rest_port: int = 0
    process: processes.ServerProcess | None = None
    starts: int = field(default=0)
    _log_from: int = field(default=0, repr=False)
    _served: bool = field(default=False, repr=False)
    """Whether it was ever ready: from then on clients know its ports, and it keeps them."""

    def __post_init__(self) -> None:
        if not self.peer_port:
            self.peer_port, self.grpc_port, self.health_port, self.rest_port = free_ports(4)
        elif not self.rest_port:
            (self.rest_port,) = free_ports(1)

    @property
    def address(self) -> str:
        return f"{self.identity}.{self.namespace}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def name(self) -> str:
        """Its replica name if it has one of its own, else its identity."""
        return self.instance or self.identity

    @property
    def peer_target(self) -> str:
        return f"{self.host}:{self.peer_port}"

    @property
    def rest_url(self) -> str:
        """The application REST API's base URL."""
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start (or restart) the process and wait until ``/readyz`` says ready.

        Until it first served, a sidecar that finds one of its application ports taken (another process
        bound it after it was chosen) moves to a fresh one and starts again: nobody knows those ports
        yet, while its peer port is in every other sidecar's peer map and must stay.
        """
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.launch()
            assert self.process is not None
            try:
                processes.wait_until("ready", self.is_ready, self.process, timeout)
                return
            except DevEnvError:
                if attempt == PORT_ATTEMPTS or not self.move_off_taken_port():
                    raise

    def launch(self) -> None:
        """Start the process and return at once (``is_ready`` says when it serves)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOQ_")}
        env["GOQ_INSTANCE"] = self.instance or f"{self.identity}-0"
        env["GOQ_SPILL_DIR"] = str(self.workdir / f"spill-{self.name}")  # not the system's /tmp
        env.update(self.env)
        env.update(
            GOQ_IDENTITY=self.identity,
            GOQ_NAMESPACE=self.namespace,
            GOQ_PEER_LISTEN=self.peer_target,
            GOQ_GRPC_LISTEN=self.grpc_target,
            GOQ_REST_LISTEN=f"127.0.0.1:{self.rest_port}",
            GOQ_HEALTH_LISTEN=f"127.0.0.1:{self.health_port}",
        )
        self.starts += 1
        log_path = self.workdir / f"{self.name}.log"
        self._log_from = log_path.stat().st_size if log_path.exists() else 0
        self.process = processes.start(f"sidecar {self.name}", sidecar_command(), log_path, env=env)

    def move_off_taken_port(self) -> bool:
        """After a first start that failed on a taken application port: choose a fresh one; whether it did."""
        if self._served or self.process is None or self.process.alive():
            return False
        found = re.search(r"cannot listen on 127\.0\.0\.1:(\d+)", self.log()[self._log_from :])
        if found is None:
            return False
        taken = int(found.group(1))
        (fresh,) = free_ports(1)
        for name in ("grpc_port", "health_port", "rest_port"):
            if getattr(self, name) == taken:
                who = holder(taken)
                log.warning("sidecar %s: port %d was taken (%s); moving to %d", self.identity, taken, who, fresh)
                setattr(self, name, fresh)
                return True
        return False

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.health_url}/readyz", timeout=1) as response:
                self._served = self._served or response.status == 200
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def kill(self) -> None:
        """``kill -9``: no shutdown at all, as a crash or an OOM kill."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and a clean shutdown."""
        if self.process is not None:
            self.process.stop(timeout=timeout)
            self.process = None

    def log(self) -> str:
        return (self.workdir / f"{self.name}.log").read_text(errors="replace")


def local_sidecars(
    identities: list[str], workdir: Path, common_env: Mapping[str, str], *, namespace: str = "default"
) -> dict[str, SidecarProcess]:
    """Sidecars that know each other through a static peer map (started by the caller)."""
    workdir.mkdir(parents=True, exist_ok=True)
    sidecars = {i: SidecarProcess(i, workdir, {}, namespace=namespace) for i in identities}
    peers = ",".join(f"{s.address}={s.peer_target}" for s in sidecars.values())
    for sidecar in sidecars.values():
        sidecar.env = {"GOQ_RESOLVER": "static", "GOQ_PEERS": peers, **common_env}
    return sidecars


def holder(port: int) -> str:
    """Which process listens on ``port``, as ``ss`` tells (for the log line that says a port was taken)."""
    try:
        shown = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "holder unknown"
    return " ".join(shown.stdout.split()) or "no listener left"
