"""Messages between two injected pods run by the pod runner: all arrive (over mutual TLS), through a sidecar
crash too."""

import os
import signal

import grpc

from goq.devenv.demo import ACCEPTED, INVOICED, sidecar_pid
from goq.webhook.settings import CONTAINER_NAME

from .conftest import ShopSpace, eventually
from .peer_tls import plaintext_refused

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}


async def test_a_thousand_persistent_messages_cross_from_one_injected_pod_to_the_other(space: ShopSpace) -> None:
    await space.queues(PATIENT, "orders", "billing")
    billing = await space.pod("billing")
    orders = await space.pod("orders", {"ORDERS_COUNT": "1000", "ORDERS_INTERVAL": "0"})
    for created in (billing, orders):
        containers = [c["name"] for c in created["spec"]["containers"]]
        assert containers == ["app", CONTAINER_NAME], "the webhook did not inject the sidecar"
        assert created["metadata"]["annotations"]["goq.io/injected"]
        assert created["metadata"]["labels"]["goq.io/id"] == created["metadata"]["name"]
    orders = await space.running("orders")
    billing = await space.running("billing")
    assert orders["status"]["podIP"] != billing["status"]["podIP"]

    async def all_invoiced() -> bool:
        return len(space.shop.numbers(billing, INVOICED)) >= 1000

    assert await eventually(all_invoiced, 120), space.shop.log(billing).read_text()[-2000:]
    assert space.shop.numbers(orders, ACCEPTED) == set(range(1, 1001))
    assert space.shop.numbers(billing, INVOICED) == set(range(1, 1001))
    # Over mutual TLS, on by default: each sidecar serves its identity's certificate, plaintext is refused.
    for pod in (orders, billing):
        spiffe = f"spiffe://cluster.local/ns/{space.name}/goq/{pod['metadata']['name']}"
        assert f"peer port: mutual TLS as {spiffe}" in space.shop.log(pod, CONTAINER_NAME).read_text()
    assert await plaintext_refused(billing) == grpc.StatusCode.UNAVAILABLE


async def test_a_killed_receiving_sidecar_is_restarted_and_messages_from_before_and_during_the_outage_arrive(
    space: ShopSpace,
) -> None:
    await space.queues(PATIENT, "orders", "billing")
    await space.pod("billing")
    await space.pod("orders", {"ORDERS_INTERVAL": "0.1"})
    orders = await space.running("orders")
    billing = await space.running("billing")

    async def some_invoiced() -> bool:
        return len(space.shop.numbers(billing, INVOICED)) >= 10

    assert await eventually(some_invoiced)
    pid = sidecar_pid(billing)
    assert pid is not None
    before = space.shop.numbers(orders, ACCEPTED)
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> dict[str, object] | None:
        pod = await space.shop.pod("billing")
        return pod if space.restarts(pod) >= 1 and sidecar_pid(pod or {}) not in (None, pid) else None

    assert await eventually(restarted, 60), "the pod runner did not restart the killed sidecar"
    billing = await space.running("billing")
    during = space.shop.numbers(orders, ACCEPTED) - before
    assert during, "orders had nothing accepted while billing's sidecar was down"

    async def everything_arrived() -> bool:
        return (before | during) <= space.shop.numbers(billing, INVOICED)

    assert await eventually(everything_arrived, 90), sorted((before | during) - space.shop.numbers(billing, INVOICED))
