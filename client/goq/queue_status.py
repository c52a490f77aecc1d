"""Heartbeats and the GoQueue status built from them: shared by the sidecar (writer) and the operator (reader).

Where heartbeats live, and why: one ``coordination.k8s.io/v1`` **Lease per pod**, ``goq-<id>-<pod>``,
the figures in its annotations, ``spec.renewTime`` the heartbeat. Leases are what Kubernetes itself
uses for node heartbeats: small, never mounted into pods or cached by kubelets (ConfigMaps are), and
their ``renewTime`` says what they mean to anyone who runs ``kubectl get lease``. Each sidecar writes
only its own Lease, so no two writers ever conflict and the write is the same size at 1 or 1,000
replicas; the operator lists them once per sweep and keeps only a summary (and the worst few pods) in
the GoQueue status. Pure: no I/O.
"""

import datetime
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from goq import names

HEARTBEAT_LABEL: Final = "goq.io/heartbeat-of"
"""On a heartbeat Lease: the identity (value). The operator lists Leases by it."""
ANNOTATION_POD: Final = "goq.io/pod"
"""On a heartbeat Lease: the pod it beats for (its name may be shortened, this never is)."""
FIGURE_ANNOTATIONS: Final = {
    "ready": "goq.io/ready",
    "send_queue": "goq.io/send-queue",
    "receive_queue": "goq.io/receive-queue",
    "delivered": "goq.io/delivered",
    "poisoned": "goq.io/poisoned",
}
"""PodFigures field -> annotation on the Lease (values are strings, as annotations must be)."""
LEASE_NAME_MAX: Final = 253


@dataclass(frozen=True)
class PodFigures:
    """What one sidecar reports about its pod on each heartbeat."""

    ready: bool
    send_queue: int = 0
    """Messages waiting to be delivered to peers."""
    receive_queue: int = 0
    """Messages waiting for (or leased to) the application."""
    delivered: int = 0
    """Messages delivered (a counter; the reporter keeps it across sidecar restarts of the pod)."""
    poisoned: int = 0
    """Messages sent to the poison queue (a counter, like ``delivered``)."""

    def to_annotations(self) -> dict[str, str]:
        """The figures as the Lease's annotations."""
        return {
            FIGURE_ANNOTATIONS["ready"]: "true" if self.ready else "false",
            FIGURE_ANNOTATIONS["send_queue"]: str(self.send_queue),
            FIGURE_ANNOTATIONS["receive_queue"]: str(self.receive_queue),
            FIGURE_ANNOTATIONS["delivered"]: str(self.delivered),
            FIGURE_ANNOTATIONS["poisoned"]: str(self.poisoned),
        }

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> "PodFigures":
        """Figures read back from a Lease; unreadable numbers count as 0 (never fail a whole sweep)."""

        def number(field: str) -> int:
            try:
                return max(0, int(annotations.get(FIGURE_ANNOTATIONS[field]) or 0))
            except ValueError:
                return 0

        return cls(
            annotations.get(FIGURE_ANNOTATIONS["ready"]) == "true",
            number("send_queue"),
            number("receive_queue"),
            number("delivered"),
            number("poisoned"),
        )

    def plus_counters(self, base: "PodFigures") -> "PodFigures":
        """These figures with ``base``'s counters added (what earlier sidecars of the pod counted)."""
        return PodFigures(
            self.ready,
            self.send_queue,
            self.receive_queue,
            self.delivered + base.delivered,
            self.poisoned + base.poisoned,
        )


@dataclass(frozen=True)
class Heartbeat:
    """One pod's heartbeat Lease as the operator reads it."""

    pod: str
    figures: PodFigures
    renewed: datetime.datetime | None
    lease: str
    """The Lease's name."""
    uid: str


def lease_name(identity: str, pod: str) -> str:
    """``goq-<id>-<pod>``; shortened with a hash of the full name when over 253 characters."""
    name = f"{names.service_name(identity)}-{pod}"
    if len(name) <= LEASE_NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: LEASE_NAME_MAX - 11].rstrip('-.')}-{digest}"


def lease_body(
    identity: str,
    pod: str,
    figures: PodFigures,
    now: datetime.datetime,
    duration: int,
    owner: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A new heartbeat Lease; ``owner``: the GoQueue (a dict), so that deleting it deletes its Leases."""
    meta: dict[str, Any] = {
        "name": lease_name(identity, pod),
        "labels": {HEARTBEAT_LABEL: identity},
        "annotations": {ANNOTATION_POD: pod, **figures.to_annotations()},
    }
    if owner is not None:
        owner_meta = owner["metadata"]
        meta["ownerReferences"] = [
            {
                "apiVersion": names.API_VERSION,
                "kind": names.GOQUEUE_KIND,
                "name": owner_meta["name"],
                "uid": owner_meta["uid"],
            }
        ]
    stamp = format_micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": pod, "leaseDurationSeconds": duration, "acquireTime": stamp, "renewTime": stamp},
    }


def beat_patch(figures: PodFigures, now: datetime.datetime, duration: int) -> dict[str, Any]:
    """The merge patch of one heartbeat: the figures and ``renewTime``."""
    return {
        "metadata": {"annotations": figures.to_annotations()},
        "spec": {"renewTime": format_micro_time(now), "leaseDurationSeconds": duration},
    }


def read_heartbeat(lease: Mapping[str, Any]) -> Heartbeat | None:
    """A heartbeat Lease (a dict) as a Heartbeat; ``None`` if it is not one."""
    meta = lease.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    pod = annotations.get(ANNOTATION_POD) or (lease.get("spec") or {}).get("holderIdentity")
    if not isinstance(pod, str) or not pod:
        return None
    renewed = parse_time((lease.get("spec") or {}).get("renewTime"))
    return Heartbeat(
        pod, PodFigures.from_annotations(annotations), renewed, str(meta.get("name")), str(meta.get("uid"))
    )


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second, as Kubernetes writes times."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime.datetime) -> str:
    """A Kubernetes MicroTime (``renewTime`` of a Lease): RFC 3339 with microseconds."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: object) -> datetime.datetime | None:
    """A Kubernetes timestamp (seconds or microseconds), or ``None`` if absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
