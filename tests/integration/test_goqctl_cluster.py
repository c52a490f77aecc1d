"""goqctl's cluster view and identity targeting against the real kube-apiserver, with the operator as a process.

No kubelet runs here: the test plays it by writing pod status through the status subresource; sidecar
heartbeats come from ``StatusReporter`` (the sidecar's own writer), so the GoQueue status goqctl reads is
the one the operator really writes. Identity targeting reaches a real sidecar process.
"""

import asyncio
import contextlib
import datetime
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from goq.devenv.sidecars import SidecarProcess
from goq.queue_status import PodFigures, format_time
from goq.sidecar.adapters.kube import StatusReporter
from goq.sidecar.adapters.kube.api import KubeApi

from .operator_kube import OperatorProcess, apply_crds, eventually, namespace, running_operator, simple_pod

GROUP, VERSION = "goq.io", "v1alpha1"
GOQCTL = str(Path(sys.executable).with_name("goqctl"))
Sidecars = Callable[..., dict[str, SidecarProcess]]


@pytest.fixture(scope="module")
async def operator(kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OperatorProcess]:
    await apply_crds(kube_api)
    async with running_operator(kube_api, tmp_path_factory.mktemp("operator")) as handle:
        yield handle


@pytest.fixture
async def ns(kube_api: k8s.ApiClient, operator: OperatorProcess) -> AsyncIterator[str]:
    async with namespace(kube_api, "ctl") as name:
        for identity in ("orders", "billing"):
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": identity}, "spec": {}}
            await k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(GROUP, VERSION, name, "goqueues", body)
        yield name


async def goqctl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """goqctl as a user runs it, in a thread so that heartbeats on this loop go on."""
    return await asyncio.to_thread(
        subprocess.run,
        [GOQCTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def play_kubelet(
    api: k8s.ApiClient, ns: str, pod: str, sidecar: dict[str, Any], ready: bool, ip: str = "127.0.0.1"
) -> None:
    """The pod's status as a kubelet writes it: the sidecar in ``sidecar``'s state, Ready as given."""
    now = format_time(datetime.datetime.now(datetime.UTC))
    status = {
        "phase": "Running",
        "podIP": ip,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}],
        "containerStatuses": [
            {"name": "goq-sidecar", "image": "goq", "imageID": "", "ready": ready, "restartCount": 0, **sidecar}
        ],
    }
    await k8s.CoreV1Api(api).patch_namespaced_pod_status(pod, ns, {"status": status})


RUNNING = {"state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}
CRASH_LOOP = {
    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
    "restartCount": 5,
    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": None, "finishedAt": None}},
}


@contextlib.asynccontextmanager
async def heartbeats(sidecar_kube: KubeApi, ns: str, figures: dict[str, PodFigures]) -> AsyncIterator[None]:
    """Sidecars of ``orders`` heartbeating ``figures`` until the block ends."""
    reporter, stop = StatusReporter(sidecar_kube, ns, "orders"), asyncio.Event()

    async def beat() -> None:
        while not stop.is_set():
            for pod, pod_figures in figures.items():
                await reporter.report(pod, pod_figures)
            await asyncio.sleep(0.3)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        stop.set()
        await task


async def test_list_and_status_show_each_goqueue_its_pods_and_the_worst_pods_with_reasons(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi, kubeconfig: Path
) -> None:
    core = k8s.CoreV1Api(kube_api)
    for pod in ("orders-0", "orders-1"):
        await core.create_namespaced_pod(ns, simple_pod(pod, {"goq.io/id": "orders"}))
    await play_kubelet(kube_api, ns, "orders-0", {**RUNNING}, ready=True)
    await play_kubelet(kube_api, ns, "orders-1", CRASH_LOOP, ready=False)
    async with heartbeats(sidecar_kube, ns, {"orders-0": PodFigures(True, send_queue=3, delivered=7, poisoned=1)}):

        async def written() -> dict[str, Any] | None:
            found: dict[str, Any] = await k8s.CustomObjectsApi(kube_api).get_namespaced_custom_object(
                GROUP, VERSION, ns, "goqueues", "orders"
            )
            status = found.get("status") or {}
            return (
                status
                if (status.get("ready"), status.get("delivered"), status.get("unhealthyPods")) == ("1/2", 7, 1)
                else None
            )

        assert await eventually(written, within=30), "the operator never wrote the orders status"

        listed = await goqctl(kubeconfig, "-n", ns, "list")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split() == [
            "IDENTITY",
            "READY",
            "PODS",
            "SENDQ",
            "RECVQ",
            "DELIVERED",
            "POISONED",
            "HEALTH",
            "AGE",
        ]
        rows = {line.split()[0]: line.split() for line in lines[1:]}
        assert rows["orders"][:8] == ["orders", "1/2", "2", "3", "0", "7", "1", "PodsUnhealthy"]
        assert rows["billing"][:3] == ["billing", "0/0", "0"]
        column = lines[0].index("READY")  # aligned: every row's READY starts where the header's does
        assert all(line[column - 3 : column] == "   " and line[column] != " " for line in lines)

        wide = await goqctl(kubeconfig, "list", "-n", ns, "-o", "wide")
        assert "orders-1: SidecarCrashLooping" in wide.stdout
        assert wide.stdout.splitlines()[0].split()[-2:] == ["UNHEALTHY", "PROBLEM"]

        everywhere = await goqctl(kubeconfig, "list", "-A", "-o", "json")
        mine = [q for q in json.loads(everywhere.stdout) if q["namespace"] == ns]
        assert [(q["identity"], q["readyPods"], q["pods"], q["sendQueue"], q["health"]) for q in mine] == [
            ("billing", 0, 0, 0, "Healthy"),
            ("orders", 1, 2, 3, "PodsUnhealthy"),
        ]
        table = (await goqctl(kubeconfig, "list", "-A")).stdout.splitlines()
        assert table[0].split()[:2] == ["NAMESPACE", "IDENTITY"]
        assert any(line.split()[:2] == [ns, "orders"] for line in table)

        shown = await goqctl(kubeconfig, "-n", ns, "status", "orders")
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout
        assert text.startswith(f"orders in {ns}: PodsUnhealthy\n")
        assert "worst pod orders-1: SidecarCrashLooping: pod orders-1: sidecar CrashLoopBackOff" in text
        pods = [line.split() for line in text.splitlines() if line.startswith("orders-")]
        assert [p[:6] for p in pods] == [
            ["orders-1", "no", "Running", "5", pods[0][4], "SidecarCrashLooping"],
            ["orders-0", "yes", "Running", "0", pods[1][4], "-"],
        ]
        document = json.loads((await goqctl(kubeconfig, "status", "orders", "-n", ns, "-o", "json")).stdout)
        assert [(d["identity"], [p["name"] for p in d["podList"]]) for d in document] == [
            ("orders", ["orders-0", "orders-1"])
        ]
        assert document[0]["worstPods"][0]["reason"] == "SidecarCrashLooping"

    missing = await goqctl(kubeconfig, "-n", ns, "status", "shipping")
    assert missing.returncode == 1
    assert f"no GoQueue 'shipping' in namespace {ns}" in missing.stdout


async def test_identity_targets_a_ready_pod_of_the_identity_and_says_why_when_none_can_be_reached(
    kube_api: k8s.ApiClient, ns: str, sidecars: Sidecars, kubeconfig: Path
) -> None:
    sidecar = sidecars("orders", namespace=ns)["orders"]
    host, _, port = sidecar.grpc_target.rpartition(":")
    core = k8s.CoreV1Api(kube_api)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orders-0", "labels": {"goq.io/id": "orders"}},
        "spec": {
            "containers": [
                {"name": "app", "image": "example/app:1"},
                {
                    "name": "goq-sidecar",
                    "image": "goq",
                    "env": [{"name": "GOQ_GRPC_LISTEN", "value": f"127.0.0.1:{port}"}],
                },
            ]
        },
    }
    await core.create_namespaced_pod(ns, body)

    not_ready = await goqctl(kubeconfig, "-n", ns, "--identity", "orders", "--via", "pod-ip", "stats")
    assert not_ready.returncode == 3
    assert not_ready.stderr.strip() == (
        f"goqctl: none of the 1 pods of identity 'orders' in namespace {ns} is ready: "
        f"see `goqctl -n {ns} status orders`"
    )

    await play_kubelet(kube_api, ns, "orders-0", RUNNING, ready=True, ip=host)
    reached = await goqctl(kubeconfig, "-n", ns, "--identity", "orders", "--via", "pod-ip", "stats", "-o", "json")
    assert reached.returncode == 0, reached.stderr
    assert json.loads(reached.stdout)["identity"] == f"orders.{ns}"
    by_pod = await goqctl(kubeconfig, "stats", "--pod", "orders-0", "-n", ns, "--via", "pod-ip")
    assert by_pod.returncode == 0, by_pod.stderr
    assert by_pod.stdout.splitlines()[0].split() == ["identity:", f"orders.{ns}"]

    tunnel = await goqctl(kubeconfig, "-n", ns, "--identity", "orders", "stats")
    assert tunnel.returncode == 3
    assert tunnel.stderr.startswith(
        f"goqctl: the API server could not open a port-forward to pod {ns}/orders-0 port {port}"
    ), tunnel.stderr

    nobody = await goqctl(kubeconfig, "-n", ns, "--identity", "shipping", "stats")
    assert nobody.returncode == 3
    assert f"no pod of identity 'shipping' in namespace {ns}" in nobody.stderr
    both = await goqctl(kubeconfig, "-n", ns, "--identity", "orders", "--sidecar", sidecar.grpc_target, "stats")
    assert both.returncode == 2
    assert "give one of them" in both.stderr
    wrong = await goqctl(kubeconfig, "-A", "--identity", "orders", "stats")
    assert wrong.returncode == 2
    assert "--identity needs one namespace" in wrong.stderr
    no_config = await goqctl(Path(f"{kubeconfig}.missing"), "list")
    assert no_config.returncode == 3
    assert no_config.stderr.startswith(f"goqctl: cannot use the kubeconfig {kubeconfig}.missing")
