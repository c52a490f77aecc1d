"""The pod status a kubelet would write, from what the runner knows. Pure: no I/O."""

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from goq.devenv.podrunner.containers import Container
from goq.queue_status import format_time


def container_status(spec: Mapping[str, Any], container: Container) -> dict[str, Any]:
    """One entry of ``status.containerStatuses``; ``containerID`` is ``process://<pid>``."""
    state: dict[str, Any]
    if container.running():
        assert container.started is not None
        state = {"running": {"startedAt": format_time(container.started)}}
    elif container.done and container.last_exit is not None:
        state = {"terminated": _terminated(container)}
    else:
        state = {"waiting": {"reason": container.waiting_reason or "ContainerCreating"}}
        if container.waiting_message:
            state["waiting"]["message"] = container.waiting_message
    status: dict[str, Any] = {
        "name": container.name,
        "image": spec.get("image", ""),
        "imageID": "",
        "ready": container.ready,
        "restartCount": container.restarts,
        "started": container.running(),
        "state": state,
    }
    if container.pid is not None:
        status["containerID"] = f"process://{container.pid}"
    if container.last_exit is not None and not container.done:
        status["lastState"] = {"terminated": _terminated(container)}
    return status


def _terminated(container: Container) -> dict[str, Any]:
    end = container.last_exit
    assert end is not None
    return {
        "exitCode": end.code,
        "reason": end.reason,
        "startedAt": format_time(end.started),
        "finishedAt": format_time(end.finished),
    }


def phase(containers: Sequence[Container]) -> str:
    """Pending until every container ran once; Succeeded/Failed when all ended for good; else Running."""
    if all(c.done for c in containers):
        return "Succeeded" if all(c.last_exit and c.last_exit.code == 0 for c in containers) else "Failed"
    if all(c.started is not None for c in containers):
        return "Running"
    return "Pending"


def pod_status(
    specs: Sequence[Mapping[str, Any]],
    containers: Sequence[Container],
    pod_ip: str,
    host_ip: str,
    start_time: datetime.datetime,
) -> dict[str, Any]:
    """``status`` of the pod: phase, addresses, conditions and container statuses."""
    moment = format_time(start_time)
    ready = bool(containers) and all(c.ready for c in containers)

    def condition(kind: str, value: bool) -> dict[str, Any]:
        return {"type": kind, "status": "True" if value else "False", "lastTransitionTime": moment}

    return {
        "phase": phase(containers),
        "hostIP": host_ip,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": moment,
        "conditions": [
            condition("PodScheduled", True),
            condition("Initialized", True),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ],
        "containerStatuses": [container_status(s, c) for s, c in zip(specs, containers, strict=True)],
    }
