"""``kubectl get goqueues``: with kubectl when it is installed, else the same columns through the API."""

import datetime
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s

from goq import names
from goq.queue_status import parse_time

COLUMNS = ("NAME", "READY", "PODS", "SENDQ", "RECVQ", "DELIVERED", "POISONED", "AGE")


def age(created: object, now: datetime.datetime) -> str:
    """Kubernetes' short age: ``42s``, ``5m10s``, ``3h``, ``2d``."""
    moment = parse_time(created)
    if moment is None:
        return "<unknown>"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 600:
        return f"{seconds // 60}m{seconds % 60}s"
    if seconds < 3 * 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h" if seconds < 48 * 3600 else f"{seconds // 86400}d"


def rows(goqueues: Sequence[Mapping[str, Any]], now: datetime.datetime) -> list[tuple[str, ...]]:
    """The printer columns of the CRD, one row per GoQueue."""
    result: list[tuple[str, ...]] = []
    for item in goqueues:
        status = item.get("status") or {}

        def figure(key: str, status: Mapping[str, Any] = status) -> str:
            value = status.get(key)
            return "" if value is None else str(value)

        result.append(
            (
                item["metadata"]["name"],
                figure("ready"),
                figure("podCount"),
                figure("sendQueue"),
                figure("receiveQueue"),
                figure("delivered"),
                figure("poisoned"),
                age(item["metadata"].get("creationTimestamp"), now),
            )
        )
    return result


def render(table: Sequence[Sequence[str]]) -> str:
    """Columns padded as kubectl pads them (three spaces between)."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table)


async def goqueues_table(api: k8s.ApiClient, namespace: str) -> str:
    """The table through the API."""
    listed = await k8s.CustomObjectsApi(api).list_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.GOQUEUE_PLURAL
    )
    items = sorted(listed.get("items", []), key=lambda i: i["metadata"]["name"])
    return render([COLUMNS, *rows(items, datetime.datetime.now(datetime.UTC))])


def kubectl_table(kubeconfig: Path, namespace: str) -> str | None:
    """``kubectl get goqueues -n <namespace>`` if kubectl is installed (its version-skew warning dropped)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return None
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(
        [kubectl, "get", "goqueues", "-n", namespace], capture_output=True, text=True, env=env, timeout=30, check=False
    )
    return done.stdout.rstrip() if done.returncode == 0 and done.stdout.strip() else None
