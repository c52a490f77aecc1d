"""One pod on the local node: its address, volumes and containers, from start to deletion."""

import asyncio
import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from goq.devenv.errors import DevEnvError
from goq.devenv.podrunner import environment, volumes
from goq.devenv.podrunner.containers import Backoff, Container, now
from goq.devenv.podrunner.images import Images, is_sidecar
from goq.devenv.podrunner.statuses import pod_status
from goq.names import PORT_GRPC

log = logging.getLogger("goq.devenv.podrunner")


@dataclass(frozen=True)
class NodeContext:
    """What every pod of the node shares."""

    images: Images
    dns_server: str
    backoff: Backoff
    sidecar_env: Mapping[str, str]
    """Extra environment for GoQ sidecars (e.g. short heartbeats in tests); the pod's own env wins."""
    host_ip: str = "127.0.0.1"
    volume_sync: float = volumes.SYNC_INTERVAL
    """Seconds between two refreshes of a pod's Secret and ConfigMap volumes (a kubelet's: about a minute)."""


def pod_directory(root: Path, namespace: str, name: str, uid: str) -> Path:
    """Where a pod's volumes and container logs (``<container>.log``) are kept under the runner's folder."""
    return root / "pods" / f"{namespace}_{name}_{uid[:8]}"


def _port(probe: Mapping[str, Any], spec: Mapping[str, Any]) -> int | None:
    port = probe.get("port")
    if isinstance(port, int):
        return port
    for declared in spec.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


class PodWorker:
    """Keeps a pod's containers running as its spec says, and knows its status."""

    def __init__(self, pod: Mapping[str, Any], address: str, directory: Path, node: NodeContext) -> None:
        self.pod = pod
        self.address = address
        self.directory = directory
        self.node = node
        self.started = now()
        self.specs: list[Mapping[str, Any]] = list(pod["spec"]["containers"])
        self.containers = [Container(s["name"], directory / f"{s['name']}.log") for s in self.specs]
        self.kubeconfig: str | None = None
        self.terminating = False
        """Deleted: its containers are being stopped; DNS no longer gives its address."""
        self._mounts: dict[str, Path] | None = None
        self._volumes_due = 0.0
        self._session: aiohttp.ClientSession | None = None

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def ready(self) -> bool:
        return all(c.ready for c in self.containers)

    def status(self) -> dict[str, Any]:
        return pod_status(self.specs, self.containers, self.address, self.node.host_ip, self.started)

    async def sync(self, reader: volumes.ObjectReader, kubeconfig: str | None) -> None:
        """Reap ended processes, start those due, probe readiness."""
        policy = str(self.pod["spec"].get("restartPolicy", "Always"))
        for container in self.containers:
            if container.reap(policy, self.node.backoff):
                assert container.last_exit is not None
                log.info("%s: container %s exited (code %d)", self.key, container.name, container.last_exit.code)
        self.kubeconfig = kubeconfig
        for spec, container in zip(self.specs, self.containers, strict=True):
            if container.due():
                await self._start(reader, spec, container)
        await asyncio.gather(*(self._probe(s, c) for s, c in zip(self.specs, self.containers, strict=True)))
        await self._refresh_volumes(reader)

    async def _refresh_volumes(self, reader: volumes.ObjectReader) -> None:
        """Every ``volume_sync`` s, swap in what changed in the pod's Secrets and ConfigMaps (as a kubelet)."""
        if self._mounts is None or time.monotonic() < self._volumes_due:
            return
        self._volumes_due = time.monotonic() + self.node.volume_sync
        for name in await volumes.refresh(reader, self._pod_with_ip(), self.directory / "volumes"):
            log.info("%s: volume %s updated", self.key, name)

    async def _start(self, reader: volumes.ObjectReader, spec: Mapping[str, Any], container: Container) -> None:
        try:
            if self._mounts is None:
                self._mounts = await volumes.materialize(reader, self._pod_with_ip(), self.directory / "volumes")
                self._volumes_due = time.monotonic() + self.node.volume_sync
            mounted = volumes.mounts(spec, self._mounts)
            own = await environment.container_env(reader, self._pod_with_ip(), spec, mounted)
            argv = self.node.images.argv(spec)
        except volumes.MissingObjectError as exc:
            container.waiting_reason, container.waiting_message = "CreateContainerConfigError", str(exc)
            container.next_start = time.monotonic() + 1.0
            return
        except DevEnvError as exc:
            container.waiting_reason, container.waiting_message = "ErrImagePull", str(exc)
            container.done = True
            return
        sidecar = is_sidecar(spec)
        if sidecar and self.kubeconfig is None:
            container.waiting_reason = "CreateContainerConfigError"
            container.waiting_message = "the pod's ServiceAccount has no token yet"
            container.next_start = time.monotonic() + 1.0
            return
        adaptation = environment.sidecar_network(self.address, self.node.dns_server, self.kubeconfig) if sidecar else {}
        has_sidecar = any(is_sidecar(s) for s in self.specs)
        env = environment.process_env(
            self.pod,
            own,
            home=str(self.directory),
            sidecar_target=f"{self.address}:{PORT_GRPC}" if has_sidecar and not sidecar else None,
            kubeconfig=self.kubeconfig,
            adaptation=adaptation,
            extra=self.node.sidecar_env if sidecar else {},
        )
        if spec.get("workingDir"):
            log.debug("%s: workingDir %s is not kept locally", self.key, spec["workingDir"])
        container.start(argv, env, self.directory)
        log.info("%s: started %s (pid %s) at %s", self.key, container.name, container.pid, self.address)

    def _pod_with_ip(self) -> dict[str, Any]:
        status = dict(self.pod.get("status") or {})
        status |= {"podIP": self.address, "hostIP": self.node.host_ip}
        return {**self.pod, "status": status}

    async def _probe(self, spec: Mapping[str, Any], container: Container) -> None:
        if not container.running():
            container.ready = False
            return
        probe = (spec.get("readinessProbe") or {}).get("httpGet")
        if probe is None:
            container.ready = True
            return
        port = _port(probe, spec)
        if port is None:
            container.ready = False
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        url = f"http://{self.address}:{port}{probe.get('path', '/')}"
        try:
            async with self._session.get(url) as response:
                container.ready = 200 <= response.status < 400
        except (aiohttp.ClientError, TimeoutError):
            container.ready = False

    async def stop(self, grace: float) -> None:
        """Stop every container (SIGTERM, SIGKILL after ``grace`` s) and remove the pod's folder."""
        await asyncio.gather(*(c.stop(grace) for c in self.containers))
        if self._session is not None:
            await self._session.close()
        shutil.rmtree(self.directory / "volumes", ignore_errors=True)
