"""Which sidecar a command talks to: ``--sidecar HOST:PORT``, or a ready pod of ``--identity`` in the cluster.

By identity, goqctl picks a ready pod (``--pod`` names one) and reaches its sidecar's application gRPC
port, which listens on the pod's 127.0.0.1 only. ``--via port-forward`` (the default) tunnels to it
through the API server as ``kubectl port-forward`` does (the pod's kubelet connects inside the pod);
``--via pod-ip`` dials the pod IP directly, which works only where the sidecar's application port listens on
its pod IP (``GOQ_GRPC_LISTEN``, which also lets every pod reaching that IP send as the identity) and that IP is
reachable from here. See docs/goqctl.md.
"""

import asyncio
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from goq import names
from goq.cli.goqctl.errors import TargetError, UsageError

DEFAULT_SIDECAR: Final = f"127.0.0.1:{names.PORT_GRPC}"
VIAS: Final = ("port-forward", "pod-ip")


@dataclass(frozen=True)
class Target:
    """The flags that choose a sidecar."""

    sidecar: str | None = None
    identity: str | None = None
    pod: str | None = None
    via: str = "port-forward"

    @property
    def by_identity(self) -> bool:
        return self.identity is not None or self.pod is not None


def grpc_port(pod: Mapping[str, Any]) -> int:
    """The sidecar's application gRPC port: from its ``GOQ_GRPC_LISTEN`` if the pod sets one, else 7701."""
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") != names.SIDECAR_CONTAINER:
            continue
        for item in container.get("env") or []:
            if item.get("name") == "GOQ_GRPC_LISTEN" and isinstance(item.get("value"), str):
                port = item["value"].rpartition(":")[2]
                if port.isdigit():
                    return int(port)
    return names.PORT_GRPC


def choose_pod(pods: list[dict[str, Any]], identity: str | None, pod: str | None, namespace: str) -> dict[str, Any]:
    """The named pod, else the first ready pod of the identity by name; a TargetError saying why none fits."""
    from goq.cli.goqctl.cluster import pod_ready

    what = f"identity {identity!r}" if identity else "GoQ"
    if pod is not None:
        named = [p for p in pods if p["metadata"]["name"] == pod]
        if not named:
            raise TargetError(f"no pod {pod!r} of {what} in namespace {namespace} (labelled {names.LABEL_ID})")
        if not pod_ready(named[0]):
            raise TargetError(f"pod {namespace}/{pod} is not ready: see `goqctl -n {namespace} status`")
        return named[0]
    if not pods:
        raise TargetError(
            f"no pod of {what} in namespace {namespace}: pods join an identity with the annotation "
            f"{names.ANNOTATION_ID}: {identity}"
        )
    ready = [p for p in pods if pod_ready(p)]
    if not ready:
        raise TargetError(
            f"none of the {len(pods)} pods of {what} in namespace {namespace} is ready: "
            f"see `goqctl -n {namespace} status {identity}`"
        )
    return ready[0]


async def _find(settings: Any, target: Target) -> tuple[str, dict[str, Any]]:
    from goq.cli.goqctl.kube import connect

    async with connect(settings) as cluster:
        if not cluster.namespace:
            raise UsageError("--identity needs one namespace: give -n NAMESPACE, not -A")
        pods = await cluster.pods(cluster.namespace, target.identity)
        return cluster.namespace, choose_pod(pods, target.identity, target.pod, cluster.namespace)


@contextlib.contextmanager
def sidecar_address(target: Target, settings: Any) -> Iterator[str]:
    """``host:port`` of the sidecar's application gRPC API for as long as the block runs."""
    if not target.by_identity:
        yield target.sidecar or os.environ.get("GOQ_SIDECAR") or DEFAULT_SIDECAR
        return
    if target.sidecar is not None:
        raise UsageError("--sidecar and --identity/--pod both choose the sidecar: give one of them")
    namespace, pod = asyncio.run(_find(settings, target))
    port = grpc_port(pod)
    if target.via == "pod-ip":
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            raise TargetError(f"pod {namespace}/{pod['metadata']['name']} has no IP yet")
        yield f"{ip}:{port}"
        return
    from goq.cli.goqctl.forwarding import PortForward

    with PortForward(settings, namespace, pod["metadata"]["name"], port) as local:
        yield local
