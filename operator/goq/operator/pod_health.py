"""Each pod of an identity judged from what the kubelet wrote (its status) and what its sidecar wrote
(its heartbeat Lease): ready, or which problem, in words that say what to do. Pure: no I/O.

A sidecar that cannot start (a missing Secret, a bad image, a crash loop) never heartbeats, and one
that cannot write its Lease (no RoleBinding: 403) never shows one: both are found from the pod's side,
so the GoQueue can name the pod and the cause instead of counting only what reported.
"""

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from goq import names
from goq.queue_status import Heartbeat, parse_time

STARTING: Final = frozenset({"ContainerCreating", "PodInitializing"})
"""Waiting reasons that are normal for a while after a pod is created."""
SEVERITY: Final = {
    "SidecarCannotStart": 3,
    "SidecarCrashLooping": 3,
    "NoHeartbeat": 3,
    "PodStale": 2,
    "SidecarNotStarted": 2,
    "SidecarNotReady": 1,
}
"""Problem reasons, worst first when the status lists only a few pods."""


@dataclass(frozen=True)
class PodProblem:
    """Why one pod does not count as ready, for the status, the conditions and an Event."""

    pod: str
    reason: str
    message: str

    @property
    def severity(self) -> int:
        return SEVERITY.get(self.reason, 1)


@dataclass(frozen=True)
class PodVerdict:
    """One pod of the identity: ready (heartbeating), or not, with a problem unless that is expected."""

    pod: str
    ready: bool
    problem: PodProblem | None = None
    heartbeat: Heartbeat | None = None


def sidecar_status(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The kubelet's status of the ``goq-sidecar`` container (regular or native sidecar), if any."""
    status = pod.get("status") or {}
    for entry in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        if isinstance(entry, Mapping) and entry.get("name") == names.SIDECAR_CONTAINER:
            return entry
    return None


def _last_exit(container: Mapping[str, Any]) -> str:
    restarts = int(container.get("restartCount") or 0)
    ended = ((container.get("lastState") or {}).get("terminated")) or {}
    if not restarts and not ended:
        return ""
    text = f"; restarted {restarts} times" if restarts else ""
    if ended:
        text += f", last exit code {ended.get('exitCode')} ({ended.get('reason') or 'no reason'})"
    return text


def _cannot_start(name: str, container: Mapping[str, Any]) -> PodProblem | None:
    """A sidecar container the kubelet cannot (keep) running, from its state."""
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    reason = waiting.get("reason")
    if reason and reason not in STARTING:
        detail = f": {waiting['message']}" if waiting.get("message") else ""
        kind = "SidecarCrashLooping" if reason == "CrashLoopBackOff" else "SidecarCannotStart"
        return PodProblem(name, kind, f"pod {name}: sidecar {reason}{detail}{_last_exit(container)}")
    ended = state.get("terminated")
    if ended:
        what = f"exited with code {ended.get('exitCode')} ({ended.get('reason') or 'no reason'})"
        kind = "SidecarCrashLooping" if int(container.get("restartCount") or 0) else "SidecarCannotStart"
        return PodProblem(name, kind, f"pod {name}: sidecar {what}{_last_exit(container)}")
    return None


def judge(
    pod: Mapping[str, Any],
    heartbeat: Heartbeat | None,
    now: datetime.datetime,
    stale_after: float,
) -> PodVerdict:
    """One injected pod of the identity. ``stale_after`` is also the grace a new sidecar has to beat."""
    meta = pod.get("metadata") or {}
    name = str(meta.get("name"))
    container = sidecar_status(pod)
    fresh = (
        heartbeat is not None
        and heartbeat.renewed is not None
        and (now - heartbeat.renewed).total_seconds() <= stale_after
    )
    if container is not None and (problem := _cannot_start(name, container)):
        return PodVerdict(name, False, problem, heartbeat)
    if fresh and heartbeat is not None:
        if heartbeat.figures.ready:
            return PodVerdict(name, True, None, heartbeat)
        return PodVerdict(
            name, False, PodProblem(name, "SidecarNotReady", f"pod {name}: sidecar reports not ready"), heartbeat
        )
    if meta.get("deletionTimestamp"):  # going away: silence is expected
        return PodVerdict(name, False, None, heartbeat)
    limit = f"{stale_after:.0f} s"
    if heartbeat is not None:
        message = f"pod {name}: no heartbeat for over {limit}{_last_exit(container or {})}"
        return PodVerdict(name, False, PodProblem(name, "PodStale", message), heartbeat)
    running = ((container or {}).get("state") or {}).get("running")
    since = parse_time((running or {}).get("startedAt")) or parse_time(meta.get("creationTimestamp"))
    if since is not None and (now - since).total_seconds() <= stale_after:
        return PodVerdict(name, False)  # still starting
    if running:
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        message = (
            f"pod {name}: sidecar running but no heartbeat after {limit}: can it write Leases? Bind ClusterRole "
            f"goq-sidecar to ServiceAccount {account} with a RoleBinding in namespace {meta.get('namespace')}; "
            "the sidecar's log says why"
        )
        return PodVerdict(name, False, PodProblem(name, "NoHeartbeat", message))
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    waiting = (((container or {}).get("state") or {}).get("waiting") or {}).get("reason")
    how = f"waiting: {waiting}" if waiting else f"pod phase {phase}"
    secrets = sorted(v["secret"]["secretName"] for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("secret"))
    if waiting in (None, "ContainerCreating") and secrets:  # a missing Secret volume: the kubelet waits for it
        how += f"; the kubelet waits for every Secret the pod mounts ({', '.join(secrets)}): is one missing?"
    message = f"pod {name}: sidecar not running {limit} after the pod was created ({how})"
    return PodVerdict(name, False, PodProblem(name, "SidecarNotStarted", message))


def worst(problems: Sequence[PodProblem], limit: int) -> list[PodProblem]:
    """The ``limit`` worst problems: most severe first, then by pod name (stable between sweeps)."""
    return sorted(problems, key=lambda p: (-p.severity, p.pod))[:limit]
