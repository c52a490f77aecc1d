"""The shop example's pods on a real node, as ``goq-dev demo`` watches them: through the API server (pods,
``kubectl logs``) and the node's containerd (a container's process, to kill it).

The helpers that do not depend on where pods run (``ready``, ``container_status``, the log patterns,
``goqctl``) are here too; ``goq.devenv.demo`` re-exports them for the end-to-end tests.
"""

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes_asyncio import client as k8s

from goq.devenv.errors import DevEnvError
from goq.devenv.node import binaries
from goq.devenv.node.record import NodeRecord
from goq.devenv.node.runtime import Containerd

NAMESPACE: Final = "shop"
INVOICED: Final = re.compile(r"invoiced order (\d+)")
"""billing's line for each order it invoiced (``billing: invoiced order 7 from orders.shop (attempt 1)``)."""
ACCEPTED: Final = re.compile(r"order (\d+) accepted")
"""orders' line for each order its sidecar accepted (stored before ``send`` returned)."""
CONTAINERD_ID: Final = "containerd://"


def container_status(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The pod's ``status.containerStatuses`` entry of container ``name`` (empty if it has none yet)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status["name"] == name:
            return dict(status)
    return {}


def ready(pod: Mapping[str, Any] | None) -> bool:
    """Whether the pod's condition Ready is True (every container's readiness probe passed)."""
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _local_env(kubeconfig: Path | None) -> dict[str, str]:
    """This process's environment without proxies (everything is local), with ``KUBECONFIG`` if given."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def goqctl(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``goqctl`` (this Python's) with ``args``; with ``kubeconfig``, against that cluster."""
    command = [sys.executable, "-c", "import sys; from goq.cli.goqctl import main; sys.exit(main())", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False, env=_local_env(kubeconfig))


def kubectl(kubeconfig: Path, *args: str) -> str:
    """``kubectl <args>`` against the cluster; its output, or DevEnvError with kubectl's message."""
    done = subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, timeout=60, check=False, env=_local_env(kubeconfig)
    )
    if done.returncode:
        raise DevEnvError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.rstrip()


def node_containerd(node_record: Path) -> Containerd:
    """The containerd of the node whose record is at ``node_record``, to ask it (``ctr``), not to start it."""
    return Containerd(NodeRecord.load(node_record), binaries.runtime_dir(), os.environ.get("PATH", ""))


def task_pid(containerd: Containerd, container_id: str) -> int | None:
    """The host PID of a container's main process: ``ctr task ls`` of the node's containerd (``k8s.io``).

    ``container_id`` is the kubelet's ``containerID`` (``containerd://<id>``) or the bare id. None when
    containerd has no running task of that id (the container exited, or is being restarted).
    """
    wanted = container_id.removeprefix(CONTAINERD_ID)
    for line in containerd.ctr("task", "ls").splitlines()[1:]:  # TASK  PID  STATUS
        fields = line.split()
        if len(fields) >= 3 and fields[0] == wanted and fields[2] == "RUNNING":
            return int(fields[1])
    return None


@dataclass
class ClusterShop:
    """Where the demo finds the shop's pods, their logs and their containers' processes on a real node."""

    api: k8s.ApiClient
    kubeconfig: Path
    containerd: Containerd
    namespace: str = NAMESPACE

    async def pod(self, app: str) -> dict[str, Any] | None:
        """The newest live pod of ``app`` (label ``app=<app>``), as a dict."""
        listed = await k8s.CoreV1Api(self.api).list_namespaced_pod(self.namespace, label_selector=f"app={app}")
        live = [self.api.sanitize_for_serialization(p) for p in listed.items if not p.metadata.deletion_timestamp]
        live.sort(key=lambda p: p["metadata"]["creationTimestamp"])
        return live[-1] if live else None

    async def log(self, pod: Mapping[str, Any], container: str = "app") -> str:
        """The container's log as ``kubectl logs`` reads it: from the kubelet, through the API server."""
        text: str = await k8s.CoreV1Api(self.api).read_namespaced_pod_log(
            pod["metadata"]["name"], self.namespace, container=container
        )
        return text

    async def numbers(self, pod: Mapping[str, Any], pattern: re.Pattern[str]) -> set[int]:
        """The order numbers in the app container's log lines matching ``pattern``."""
        return {int(m) for m in pattern.findall(await self.log(pod))}

    def container_pid(self, pod: Mapping[str, Any], container: str) -> int | None:
        """The host PID of the container's process (its pod status names the containerd container)."""
        found = container_status(pod, container).get("containerID") or ""
        if not found.startswith(CONTAINERD_ID):
            return None
        return task_pid(self.containerd, found)
