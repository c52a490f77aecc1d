"""Messages between two injected pods on the real node: all arrive (over mutual TLS), through a sidecar crash
too, and the injected pod spec holds as the kubelet runs it (non-root, read-only root, probes, spill volume)."""

import os
import signal
import urllib.request
from typing import Any

import grpc

from goq import names
from goq.webhook.settings import CONTAINER_NAME, SPILL_MOUNT_PATH

from .conftest import ACCEPTED, INVOICED, ShopSpace, container_status, eventually, ready
from .peer_tls import plaintext_refused

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}


async def test_a_thousand_persistent_messages_cross_from_one_injected_pod_to_the_other(space: ShopSpace) -> None:
    await space.queues(PATIENT, "orders", "billing")
    billing = await space.pod("billing")
    orders = await space.pod("orders", {"ORDERS_COUNT": "1000", "ORDERS_INTERVAL": "0"})
    for created in (billing, orders):
        containers = [c["name"] for c in created["spec"]["containers"]]
        assert containers == ["app", CONTAINER_NAME], "the webhook did not inject the sidecar"
        assert created["metadata"]["annotations"][names.ANNOTATION_INJECTED]
        assert created["metadata"]["labels"][names.LABEL_ID] == created["metadata"]["name"]
    orders = await space.running("orders")
    billing = await space.running("billing")
    assert orders["status"]["podIP"] != billing["status"]["podIP"]

    async def all_invoiced() -> bool:
        return len(await space.numbers(billing, INVOICED)) >= 1000

    assert await eventually(all_invoiced, 180, interval=2.0), (await space.log(billing))[-2000:]
    assert await space.numbers(orders, ACCEPTED) == set(range(1, 1001))
    assert await space.numbers(billing, INVOICED) == set(range(1, 1001))
    # Over mutual TLS, on by default: each sidecar serves its identity's certificate, plaintext is refused.
    for pod in (orders, billing):
        spiffe = f"spiffe://cluster.local/ns/{space.name}/goq/{pod['metadata']['name']}"
        assert f"peer port: mutual TLS as {spiffe}" in await space.log(pod, CONTAINER_NAME)
    assert await plaintext_refused(billing) == grpc.StatusCode.UNAVAILABLE


async def test_a_killed_receiving_sidecar_is_restarted_by_the_kubelet_and_messages_from_before_and_during_arrive(
    space: ShopSpace,
) -> None:
    await space.queues(PATIENT, "orders", "billing")
    await space.pod("billing")
    await space.pod("orders", {"ORDERS_INTERVAL": "0.1"})
    orders = await space.running("orders")
    billing = await space.running("billing")

    async def some_invoiced() -> bool:
        return len(await space.numbers(billing, INVOICED)) >= 10

    assert await eventually(some_invoiced, 60, interval=1.0)
    before = await space.numbers(orders, ACCEPTED)
    first = container_status(billing)["containerID"]
    space.kill_sidecar(billing)

    async def restarted() -> dict[str, object] | None:
        pod = await space.read("billing")
        status = container_status(pod)
        return pod if space.restarts(pod) >= 1 and status.get("containerID") not in (None, first) else None

    assert await eventually(restarted, 60), "the kubelet did not restart the killed sidecar"
    billing = await space.running("billing")
    last = container_status(billing)["lastState"]["terminated"]
    assert last["exitCode"] == 137, last  # SIGKILL, as the kubelet saw it
    during = await space.numbers(orders, ACCEPTED) - before
    assert during, "orders had nothing accepted while billing's sidecar was down"

    async def everything_arrived() -> bool:
        return (before | during) <= await space.numbers(billing, INVOICED)

    assert await eventually(everything_arrived, 90, interval=1.0), sorted(
        (before | during) - await space.numbers(billing, INVOICED)
    )


def _get(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


async def test_the_injected_sidecar_runs_non_root_on_a_read_only_root_and_its_readiness_gates_the_pod(
    space: ShopSpace,
) -> None:
    """The spec the webhook writes, as the kubelet honours it: user, read-only root, the spill ``emptyDir``,
    the key ring readable, and the readiness probe gating the pod's Ready condition."""
    await space.queues(PATIENT, "billing")
    await space.pod("billing")
    billing = await space.running("billing")
    exec_ = ("-n", space.name, "exec", "billing", "-c", CONTAINER_NAME, "--", "python", "-c")
    kubectl = space.cluster.kubectl
    [sidecar] = [c for c in billing["spec"]["containers"] if c["name"] == CONTAINER_NAME]
    uid = sidecar["securityContext"]["runAsUser"]
    assert kubectl(*exec_, "import os; print(os.getuid())").strip() == str(uid)
    write = "import errno\ntry: open('/written', 'w')\nexcept OSError as e: print(errno.errorcode[e.errno])"
    assert kubectl(*exec_, write).strip() == "EROFS", "the sidecar's root filesystem is writable"
    spill = f"import pathlib; p = pathlib.Path('{SPILL_MOUNT_PATH}/x'); p.write_text('ok'); print(p.read_text())"
    assert kubectl(*exec_, spill).strip() == "ok", "the spill emptyDir is not writable"
    active = "import pathlib; print(pathlib.Path('/var/run/goq/hmac/active').read_text())"
    assert kubectl(*exec_, active).strip(), "the non-root sidecar cannot read its key ring"

    # The readiness probe gates the pod's Ready condition (what rollouts and Services follow): with the sidecar
    # stopped (SIGSTOP: its /readyz times out), the kubelet marks it and the pod not ready within two probe
    # periods, before the liveness probe (three 10 s periods) would restart it; continued, both are ready again.
    # (GoQ's own headless Service publishes not-ready addresses on purpose: peers retry on their own.)
    ip = billing["status"]["podIP"]
    assert _get(f"http://{ip}:{names.PORT_HEALTH}/readyz") == 200
    pid = space.sidecar_pid(billing)
    os.kill(pid, signal.SIGSTOP)
    try:

        async def not_ready() -> dict[str, Any] | None:
            pod = await space.read("billing")
            return pod if not ready(pod) and container_status(pod).get("ready") is False else None

        stopped = await eventually(not_ready, 25)
        assert stopped, "the pod stayed Ready with its sidecar's /readyz unanswered"
    finally:
        os.kill(pid, signal.SIGCONT)
    assert space.restarts(stopped) == 0, "the liveness probe restarted the sidecar before readiness reacted"
    back = await space.running("billing", within=30)
    assert container_status(back)["containerID"] == container_status(billing)["containerID"], "not the same run"
