"""The GoQueue status: per-pod heartbeat figures and the totals shown by ``kubectl get goqueues``.

Shared because two components write it: each sidecar merges its own pod's entry and recomputes the
totals on every heartbeat; the operator marks entries stale when their heartbeat stops and prunes
entries of pods that are gone. Pure: no I/O.
"""

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PodFigures:
    """What one sidecar reports about its pod on each heartbeat."""

    ready: bool
    send_queue: int = 0
    """Messages waiting to be delivered to peers."""
    receive_queue: int = 0
    """Messages waiting for (or leased to) the application."""
    delivered: int = 0
    """Messages delivered since the sidecar started (a counter)."""
    poisoned: int = 0
    """Messages sent to the poison queue since the sidecar started (a counter)."""

    def to_entry(self, heartbeat: datetime.datetime) -> dict[str, Any]:
        """The pod's entry under ``status.pods`` (CRD spelling)."""
        return {
            "ready": self.ready,
            "sendQueue": self.send_queue,
            "receiveQueue": self.receive_queue,
            "delivered": self.delivered,
            "poisoned": self.poisoned,
            "heartbeat": format_time(heartbeat),
            "stale": False,
        }


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second, as Kubernetes writes times."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime.datetime | None:
    """A Kubernetes timestamp, or ``None`` if absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def totals(pods: Mapping[str, Any]) -> dict[str, Any]:
    """The printer-column figures over every pod entry; stale pods count as pods but never as ready."""
    entries = [e for e in pods.values() if isinstance(e, Mapping)]
    ready = sum(1 for e in entries if e.get("ready") is True and not e.get("stale"))

    def total(key: str) -> int:
        return sum(int(e.get(key) or 0) for e in entries)

    return {
        "ready": f"{ready}/{len(entries)}",
        "readyPods": ready,
        "podCount": len(entries),
        "sendQueue": total("sendQueue"),
        "receiveQueue": total("receiveQueue"),
        "delivered": total("delivered"),
        "poisoned": total("poisoned"),
    }


def stale_pods(pods: Mapping[str, Any], now: datetime.datetime, stale_after: float) -> list[str]:
    """Pods whose heartbeat is older than ``stale_after`` seconds (or missing) and not yet marked stale."""
    found = []
    for name, entry in pods.items():
        if not isinstance(entry, Mapping) or entry.get("stale"):
            continue
        beat = parse_time(entry.get("heartbeat"))
        if beat is None or (now - beat).total_seconds() > stale_after:
            found.append(name)
    return sorted(found)
