"""The shop's pods under the pod runner, for the end-to-end tests that still run on it (``tests/e2e``):
their logs are the runner's files, their containers local processes (``containerID: process://<pid>``).

``goq-dev demo`` runs on a real node (``goq.devenv.shop``); this goes with the pod runner.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s

from goq.devenv.podrunner.pods import pod_directory
from goq.devenv.shop import NAMESPACE, container_status


@dataclass
class Shop:
    """Where to find the shop's pods, their logs and their sidecars under the pod runner."""

    api: k8s.ApiClient
    kubeconfig: Path
    runner_dir: Path
    namespace: str = NAMESPACE

    async def pod(self, app: str) -> dict[str, Any] | None:
        """The newest live pod of ``app`` (label ``app=<app>``), as a dict."""
        listed = await k8s.CoreV1Api(self.api).list_namespaced_pod(self.namespace, label_selector=f"app={app}")
        live = [self.api.sanitize_for_serialization(p) for p in listed.items if not p.metadata.deletion_timestamp]
        live.sort(key=lambda p: p["metadata"]["creationTimestamp"])
        return live[-1] if live else None

    def log(self, pod: Mapping[str, Any], container: str = "app") -> Path:
        """The container's log file in the runner's directory."""
        meta = pod["metadata"]
        return pod_directory(self.runner_dir, meta["namespace"], meta["name"], meta["uid"]) / f"{container}.log"

    def numbers(self, pod: Mapping[str, Any], pattern: re.Pattern[str]) -> set[int]:
        """The numbers in the app container's log lines matching ``pattern``."""
        try:
            text = self.log(pod).read_text(errors="replace")
        except OSError:
            return set()
        return {int(m) for m in pattern.findall(text)}


def sidecar_pid(pod: Mapping[str, Any]) -> int | None:
    """The sidecar's process, from its ``containerID`` (``process://<pid>``)."""
    found = container_status(pod, "goq-sidecar").get("containerID", "")
    return int(found.removeprefix("process://")) if found.startswith("process://") else None
