"""The GoQueue status tells the truth about its pods, against the real kube-apiserver with the operator as a
process. No kubelet runs here: a test plays it by writing the pod's status through the status subresource,
as a kubelet does; sidecars are played by StatusReporter, the sidecar's own heartbeat writer."""

import asyncio
import datetime
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.errors import PermanentError
from goq.queue_status import PodFigures, format_time, lease_name
from goq.sidecar.adapters.kube import StatusReporter
from goq.sidecar.adapters.kube.api import KubeApi

from .operator_kube import OperatorProcess, apply_crds, eventually, namespace, running_operator, simple_pod

GROUP, VERSION = "goq.io", "v1alpha1"


@pytest.fixture(scope="module")
async def operator(kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OperatorProcess]:
    await apply_crds(kube_api)
    async with running_operator(kube_api, tmp_path_factory.mktemp("operator")) as handle:
        yield handle


@pytest.fixture
async def ns(kube_api: k8s.ApiClient, operator: OperatorProcess) -> AsyncIterator[str]:
    async with namespace(kube_api, "health") as name:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": "orders"}, "spec": {}}
        await k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(GROUP, VERSION, name, "goqueues", body)
        yield name


async def goqueue(api: k8s.ApiClient, ns: str) -> dict[str, Any]:
    found: dict[str, Any] = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "goqueues", "orders"
    )
    return found


def condition(found: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (found.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


async def create_pod(api: k8s.ApiClient, ns: str, name: str) -> None:
    created = await k8s.CoreV1Api(api).create_namespaced_pod(ns, simple_pod(name, {"goq.io/id": "orders"}))
    assert "goq-sidecar" in [c.name for c in created.spec.containers], "the webhook did not inject"


async def play_kubelet(api: k8s.ApiClient, ns: str, pod: str, sidecar: dict[str, Any]) -> None:
    """Write the pod's status as a kubelet would: the app runs, the sidecar is in ``sidecar``'s state."""
    now = format_time(datetime.datetime.now(datetime.UTC))
    status = {
        "phase": "Running" if "running" in sidecar.get("state", {}) else "Pending",
        "containerStatuses": [
            {
                "name": "app",
                "image": "example/app:1",
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            },
            {"name": "goq-sidecar", "image": "goq", "imageID": "", "ready": False, "restartCount": 0, **sidecar},
        ],
    }
    await k8s.CoreV1Api(api).patch_namespaced_pod_status(pod, ns, {"status": status})


async def warnings_about(api: k8s.ApiClient, ns: str) -> list[tuple[str, str]]:
    listed = await k8s.CoreV1Api(api).list_namespaced_event(ns, field_selector="involvedObject.name=orders")
    return [(e.reason, e.message) for e in listed.items if e.type == "Warning"]


def kubectl(kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def beat_until(reporter: StatusReporter, figures: dict[str, PodFigures], stop: asyncio.Event) -> None:
    """Sidecars that keep heartbeating (fresh beats) until ``stop``."""
    while not stop.is_set():
        for pod, pod_figures in figures.items():
            await reporter.report(pod, pod_figures)
        await asyncio.sleep(0.3)


async def test_a_sidecar_that_cannot_start_or_crash_loops_is_named_with_its_cause(
    kube_api: k8s.ApiClient, ns: str, kubeconfig: Path
) -> None:
    await create_pod(kube_api, ns, "no-secret")
    await create_pod(kube_api, ns, "crashing")
    missing = {"reason": "CreateContainerConfigError", "message": 'secret "goq-mongodb" not found'}
    await play_kubelet(kube_api, ns, "no-secret", {"state": {"waiting": missing}})
    crash_loop = {
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
        "restartCount": 5,
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": None, "finishedAt": None}},
    }
    await play_kubelet(kube_api, ns, "crashing", crash_loop)

    async def reported() -> dict[str, Any] | None:
        found = await goqueue(kube_api, ns)
        return found if (found.get("status") or {}).get("unhealthyPods") == 2 else None

    found = await eventually(reported, within=30)
    assert found, await goqueue(kube_api, ns)
    status = found["status"]
    assert status["ready"] == "0/2"
    assert {(w["pod"], w["reason"]) for w in status["worstPods"]} == {
        ("no-secret", "SidecarCannotStart"),
        ("crashing", "SidecarCrashLooping"),
    }
    ready, pods = condition(found, "Ready"), condition(found, "PodsHealthy")
    assert (ready["status"], ready["reason"]) == ("False", "PodsUnhealthy")
    assert pods["status"] == "False"
    assert 'pod no-secret: sidecar CreateContainerConfigError: secret "goq-mongodb" not found' in pods["message"]
    assert "pod crashing: sidecar CrashLoopBackOff" in pods["message"]
    assert "restarted 5 times, last exit code 1 (Error)" in pods["message"]

    async def warned() -> list[tuple[str, str]]:
        found = await warnings_about(kube_api, ns)
        return found if {r for r, _ in found} >= {"SidecarCannotStart", "SidecarCrashLooping"} else []

    warnings = await eventually(warned, within=15)
    assert any(r == "SidecarCannotStart" and "no-secret" in m and "goq-mongodb" in m for r, m in warnings), warnings
    assert any(r == "SidecarCrashLooping" and "crashing" in m for r, m in warnings), warnings
    await asyncio.sleep(2)  # several sweeps later: each pod and cause was announced once
    again = await warnings_about(kube_api, ns)
    assert sum(1 for r, m in again if r == "SidecarCannotStart" and "no-secret" in m) == 1, again
    described = await asyncio.to_thread(kubectl, kubeconfig, "describe", "goqueue", "orders", "-n", ns)
    assert 'secret "goq-mongodb" not found' in described
    row = (await asyncio.to_thread(kubectl, kubeconfig, "get", "gq", "-n", ns)).splitlines()[1].split()
    assert row[:3] == ["orders", "0/2", "2"]


async def test_a_sidecar_that_may_not_write_its_heartbeat_is_named_and_ready_counts_only_heartbeating_pods(
    kube_api: k8s.ApiClient, ns: str, kubeconfig: Path, sidecar_kube: KubeApi
) -> None:
    await create_pod(kube_api, ns, "beating")
    await create_pod(kube_api, ns, "forbidden")
    running = {"state": {"running": {"startedAt": format_time(datetime.datetime.now(datetime.UTC))}}}
    await play_kubelet(kube_api, ns, "beating", running)
    await play_kubelet(kube_api, ns, "forbidden", running)
    async with sidecar_kube.with_headers({"Impersonate-User": "someone-without-rights"}) as stranger:
        with pytest.raises(PermanentError, match="may not write Leases"):
            await StatusReporter(stranger, ns, "orders").report("forbidden", PodFigures(True))
    stop = asyncio.Event()
    beating = asyncio.create_task(
        beat_until(StatusReporter(sidecar_kube, ns, "orders"), {"beating": PodFigures(True, delivered=3)}, stop)
    )
    try:

        async def reported() -> dict[str, Any] | None:
            found = await goqueue(kube_api, ns)
            worst = (found.get("status") or {}).get("worstPods") or []
            return found if [(w["pod"], w["reason"]) for w in worst] == [("forbidden", "NoHeartbeat")] else None

        found = await eventually(reported, within=30)
        assert found, await goqueue(kube_api, ns)
        assert (found["status"]["ready"], found["status"]["delivered"]) == ("1/2", 3)
        message = condition(found, "PodsHealthy")["message"]
        assert "pod forbidden: sidecar running but no heartbeat" in message
        assert f"Bind ClusterRole goq-sidecar to ServiceAccount default with a RoleBinding in namespace {ns}" in message
        row = (await asyncio.to_thread(kubectl, kubeconfig, "get", "gq", "-n", ns)).splitlines()[1].split()
        assert row[:3] == ["orders", "1/2", "2"]
        assert any(r == "NoHeartbeat" and "forbidden" in m for r, m in await warnings_about(kube_api, ns))
    finally:
        stop.set()
        await beating


async def test_a_deleted_pods_counters_stay_in_the_totals(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> None:
    await create_pod(kube_api, ns, "staying")
    await create_pod(kube_api, ns, "leaving")
    figures = {
        "staying": PodFigures(True, delivered=10, poisoned=1),
        "leaving": PodFigures(True, delivered=32, poisoned=2),
    }
    stop = asyncio.Event()
    reporter = StatusReporter(sidecar_kube, ns, "orders")  # both pods' sidecars, each writing its own Lease
    beating = asyncio.create_task(beat_until(reporter, figures, stop))
    try:

        async def totals(delivered: int, pods: int) -> dict[str, Any] | None:
            status = (await goqueue(kube_api, ns)).get("status") or {}
            return status if (status.get("delivered"), status.get("podCount")) == (delivered, pods) else None

        assert await eventually(lambda: totals(42, 2), within=30), await goqueue(kube_api, ns)
        stop.set()
        await beating
        await k8s.CoreV1Api(kube_api).delete_namespaced_pod("leaving", ns, grace_period_seconds=0)
        status = await eventually(lambda: totals(42, 1), within=30)
        assert status, await goqueue(kube_api, ns)
        assert (status["poisoned"], status["retired"]["delivered"], status["retired"]["poisoned"]) == (3, 32, 2)

        async def lease_deleted() -> bool:
            try:
                await k8s.CoordinationV1Api(kube_api).read_namespaced_lease(lease_name("orders", "leaving"), ns)
            except ApiException as exc:
                return exc.status == 404
            return False

        assert await eventually(lease_deleted, within=15)
        await asyncio.sleep(1.5)  # sweeps after the Lease went: the gone pod is counted once, not again
        settled = (await goqueue(kube_api, ns))["status"]
        assert (settled["delivered"], settled["retired"]) == (
            42,
            {"delivered": 32, "poisoned": 2, "pods": 1, "folded": []},
        )
        stop = asyncio.Event()
        figures = {"staying": PodFigures(True, delivered=15, poisoned=1)}
        beating = asyncio.create_task(beat_until(reporter, figures, stop))
        assert await eventually(lambda: totals(47, 1), within=30), await goqueue(kube_api, ns)
    finally:
        stop.set()
        await beating


REPLICAS = 100


async def test_a_hundred_replicas_heartbeating_keep_the_goqueue_small_and_lose_no_update(
    kube_api: k8s.ApiClient, ns: str, kubeconfig: Path
) -> None:
    pods = [f"orders-{i:03}" for i in range(REPLICAS)]
    for chunk in range(0, REPLICAS, 20):
        await asyncio.gather(*(create_pod(kube_api, ns, pod) for pod in pods[chunk : chunk + 20]))
    rounds = 3
    final = {
        pod: PodFigures(True, send_queue=i % 7, receive_queue=1, delivered=rounds * (i + 1), poisoned=i % 3)
        for i, pod in enumerate(pods)
    }
    stop = asyncio.Event()
    written = 0

    async def sidecar(pod: str, index: int) -> None:
        """One pod's sidecar: its own reporter (as in its own process), a few rounds, then the last figures."""
        nonlocal written
        from goq.sidecar.adapters.kube import connect

        async with connect(str(kubeconfig)) as api:
            reporter = StatusReporter(api, ns, "orders")
            for round_ in range(1, rounds + 1):
                await reporter.report(
                    pod,
                    PodFigures(
                        True, send_queue=index % 7, receive_queue=1, delivered=round_ * (index + 1), poisoned=index % 3
                    ),
                )
                written += 1
                await asyncio.sleep(0.2)
            while not stop.is_set():
                await reporter.report(pod, final[pod])
                await asyncio.sleep(1.0)

    writers = [asyncio.create_task(sidecar(pod, i)) for i, pod in enumerate(pods)]
    try:

        async def summed() -> dict[str, Any] | None:
            for task in writers:
                if task.done() and task.exception():
                    raise AssertionError(f"a heartbeat failed: {task.exception()!r}")
            found = await goqueue(kube_api, ns)
            status = found.get("status") or {}
            return (
                found
                if status.get("readyPods") == REPLICAS
                and status.get("delivered") == sum(f.delivered for f in final.values())
                else None
            )

        found = await eventually(summed, within=120, interval=1.0)
        assert found, (await goqueue(kube_api, ns)).get("status")
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert written == REPLICAS * rounds
    status = found["status"]
    assert status["ready"] == f"{REPLICAS}/{REPLICAS}"
    assert status["podCount"] == REPLICAS
    assert status["sendQueue"] == sum(f.send_queue for f in final.values())
    assert status["receiveQueue"] == REPLICAS
    assert status["poisoned"] == sum(f.poisoned for f in final.values())
    assert status["worstPods"] == []
    size = len(json.dumps(found))
    assert size < 8192, f"the GoQueue grew to {size} bytes"
    print(f"GoQueue with {REPLICAS} heartbeating replicas: {size} bytes")
