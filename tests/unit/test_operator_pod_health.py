"""Each pod judged from the kubelet's status of its sidecar container and its heartbeat Lease."""

import datetime
from typing import Any

import pytest

from goq import names
from goq.operator.pod_health import PodVerdict, judge
from goq.queue_status import Heartbeat, PodFigures, format_time

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
NOW = T0 + datetime.timedelta(seconds=60)


def a_pod(state: dict[str, Any] | None, native: bool = False, **container: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending"}
    if state is not None:
        key = "initContainerStatuses" if native else "containerStatuses"
        status[key] = [{"name": names.SIDECAR_CONTAINER, "state": state, **container}]
    meta = {"name": "orders-1", "namespace": "shop", "creationTimestamp": format_time(T0)}
    return {"metadata": meta, "spec": {"serviceAccountName": "orders"}, "status": status}


def beat(seconds_ago: float, ready: bool = True) -> Heartbeat:
    return Heartbeat("orders-1", PodFigures(ready), NOW - datetime.timedelta(seconds=seconds_ago), "l", "u")


RUNNING = {"running": {"startedAt": format_time(T0)}}
MISSING_SECRET = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "goq-mongodb" not found'}}
CRASHING = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}
EXITED = {"terminated": {"exitCode": 2, "reason": "Error"}}


@pytest.mark.parametrize(
    ("pod", "heartbeat", "ready", "reason", "words"),
    [
        (a_pod(RUNNING), beat(5), True, None, ""),
        (a_pod(RUNNING, native=True), beat(5), True, None, ""),
        (a_pod(RUNNING), beat(5, ready=False), False, "SidecarNotReady", "reports not ready"),
        (a_pod(RUNNING), beat(45), False, "PodStale", "no heartbeat for over 30 s"),
        (
            a_pod(MISSING_SECRET),
            None,
            False,
            "SidecarCannotStart",
            'pod orders-1: sidecar CreateContainerConfigError: secret "goq-mongodb" not found',
        ),
        (
            a_pod(CRASHING, restartCount=4, lastState={"terminated": {"exitCode": 1, "reason": "Error"}}),
            beat(45),
            False,
            "SidecarCrashLooping",
            "CrashLoopBackOff: back-off 40s restarting failed container; restarted 4 times, last exit code 1 (Error)",
        ),
        (a_pod(EXITED, restartCount=1), None, False, "SidecarCrashLooping", "exited with code 2 (Error)"),
        (a_pod({"waiting": {"reason": "ImagePullBackOff"}}), None, False, "SidecarCannotStart", "ImagePullBackOff"),
        (
            a_pod(RUNNING),
            None,
            False,
            "NoHeartbeat",
            "can it write Leases? Bind ClusterRole goq-sidecar to ServiceAccount orders",
        ),
        (
            a_pod(None),
            None,
            False,
            "SidecarNotStarted",
            "not running 30 s after the pod was created (pod phase Pending)",
        ),
        (
            a_pod({"waiting": {"reason": "ContainerCreating"}}),
            None,
            False,
            "SidecarNotStarted",
            "waiting: ContainerCreating",
        ),
        (
            a_pod({"waiting": {"reason": "ContainerCreating"}})
            | {"spec": {"volumes": [{"name": "goq-tls", "secret": {"secretName": "goq-orders-tls"}}]}},
            None,
            False,
            "SidecarNotStarted",
            "waiting: ContainerCreating; the kubelet waits for every Secret the pod mounts (goq-orders-tls)",
        ),
    ],
)
def test_a_pod_is_ready_only_while_its_sidecar_heartbeats_and_otherwise_says_why(
    pod: dict[str, Any], heartbeat: Heartbeat | None, ready: bool, reason: str | None, words: str
) -> None:
    verdict = judge(pod, heartbeat, NOW, stale_after=30)
    assert verdict.ready is ready
    assert (verdict.problem.reason if verdict.problem else None) == reason
    if verdict.problem:
        assert verdict.problem.pod == "orders-1"
        assert words in verdict.problem.message


def test_a_new_pod_has_a_grace_period_before_missing_heartbeats_count() -> None:
    young = a_pod({"running": {"startedAt": format_time(NOW - datetime.timedelta(seconds=10))}})
    assert judge(young, None, NOW, 30) == PodVerdict("orders-1", False)


def test_a_terminating_pod_that_went_silent_is_not_ready_but_no_problem() -> None:
    pod = a_pod(RUNNING)
    pod["metadata"]["deletionTimestamp"] = format_time(NOW)
    verdict = judge(pod, beat(45), NOW, 30)
    assert (verdict.ready, verdict.problem) == (False, None)
