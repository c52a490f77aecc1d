"""The two sides of a fault run: a sidecar process and its MongoDB each, started and stopped together.

``mode="shared"``: both sidecars use one MongoDB (as one cluster's sidecars do); ``"split"``: each its own,
so that either side's database can fail alone. Whatever fails, ``stop`` ends every process by its PID.
"""

import contextlib
import logging
import shutil
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from prometheus_client.parser import text_string_to_metric_families

from goq.devenv.errors import DevEnvError
from goq.devenv.faults.backends import MongoBackend
from goq.devenv.sidecars import SidecarProcess, hmac_keys, local_sidecars

log = logging.getLogger("goq.devenv")

Mode = Literal["shared", "split"]
SENDER = "sender"
RECEIVER = "receiver"
HMAC_KEY = b"f" * 32


@dataclass
class Side:
    """One sidecar and the MongoDB it writes to; ``epoch`` is odd while the sidecar is down (killed and
    not ready again), and changes at every kill and restart, so a send can tell whether its answer may
    have been lost with the process."""

    name: str
    sidecar: SidecarProcess
    mongo: MongoBackend
    mongo_name: str
    epoch: int = 0

    @property
    def up(self) -> bool:
        return self.epoch % 2 == 0


@dataclass
class Topology:
    """A sender and a receiver, on loopback, each with its MongoDB (the same one in ``shared`` mode)."""

    workdir: Path
    sender: Side
    receiver: Side
    mongos: list[MongoBackend] = field(default_factory=list)

    @classmethod
    def start(
        cls, workdir: Path, mode: Mode, backend: Callable[[Path], MongoBackend], env: dict[str, str]
    ) -> "Topology":
        """Start the MongoDB(s) and both sidecars (``env``: ``GOQ_*`` settings for both); on a failure,
        whatever started is stopped before the error is raised."""
        if mode == "shared":
            shared = backend(workdir / "mongo")
            mongos, names = [shared, shared], ["shared mongod", "shared mongod"]
        else:
            mongos = [backend(workdir / f"mongo-{SENDER}"), backend(workdir / f"mongo-{RECEIVER}")]
            names = [f"{SENDER}'s mongod", f"{RECEIVER}'s mongod"]
        unique = list({id(m): m for m in mongos}.values())
        common = {"GOQ_MONGODB_DATABASE": "faults", "GOQ_HMAC_KEYS": hmac_keys({"k1": HMAC_KEY}), **env}
        group = local_sidecars([SENDER, RECEIVER], workdir / "sidecars", common)
        sides = [Side(n, group[n], m, mn) for n, m, mn in zip((SENDER, RECEIVER), mongos, names, strict=True)]
        topology = cls(workdir, sides[0], sides[1], unique)
        try:
            for mongo in unique:
                mongo.start()
            for side in sides:
                side.sidecar.env["GOQ_MONGODB_URI"] = side.mongo.uri
                side.sidecar.start()
        except BaseException:
            topology.stop()
            raise
        return topology

    @property
    def sides(self) -> tuple[Side, Side]:
        return (self.sender, self.receiver)

    def side(self, name: str) -> Side:
        for side in self.sides:
            if side.name == name:
                return side
        raise DevEnvError(f"no side {name!r} in a fault run; there are {SENDER!r} and {RECEIVER!r}")

    def stop(self) -> None:
        """Kill both sidecars and stop every MongoDB, by PID; free the databases' disk (logs stay)."""
        for side in self.sides:
            with contextlib.suppress(Exception):
                side.sidecar.kill()
        for mongo in self.mongos:
            try:
                mongo.stop()
            except Exception:
                log.exception("stopping a fault run's MongoDB failed; killing it")
                with contextlib.suppress(Exception):
                    mongo.kill()
        for data in self.workdir.glob("mongo*/**/data"):
            shutil.rmtree(data, ignore_errors=True)


def metric_total(side: Side, name: str) -> float:
    """The sum of a metric's samples (all labels) from the side's sidecar's ``/metrics``."""
    with urllib.request.urlopen(f"{side.sidecar.health_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)
