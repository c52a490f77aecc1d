"""A slow application: it is never flooded, and neither sidecar's memory grows with what waits for it."""

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from .conftest import App
from .test_delivery import payloads

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]

OFFERED, SIZE = 16000, 8192  # 125 MB offered to an application that takes ten messages and stops
IN_FLIGHT, RECEIVE_LIMIT, LANE_WINDOW = 10, 500, 500
PATIENT = json.dumps({"maxAttempts": 1000, "initialBackoff": "200ms", "maxBackoff": "1s", "maxAge": "1h"})


def rss_mb(sidecar: SidecarProcess) -> float:
    assert sidecar.process is not None
    for line in Path(f"/proc/{sidecar.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_a_slow_consumer_holds_only_its_credit_and_memory_stays_bounded_while_thousands_wait(
    sidecars: Sidecars, apps: Apps
) -> None:
    spec = json.dumps({"receiveQueueLimit": RECEIVE_LIMIT, "sendQueueLimit": OFFERED, "overflow": "reject"})
    group = sidecars(
        "orders", "billing", GOQ_QUEUE_SPEC=spec, GOQ_RETRY_POLICY=PATIENT, GOQ_LANE_WINDOW=str(LANE_WINDOW)
    )
    orders, billing = apps(group["orders"]), apps(group["billing"])
    idle = {name: rss_mb(sidecar) for name, sidecar in group.items()}

    stream = billing.stub.Receive(pb.ReceiveRequest(max_in_flight=IN_FLIGHT, max_batch=IN_FLIGHT))
    held: list[pb.ReceivedMessage] = []

    async def take_and_never_acknowledge() -> None:
        async for batch in stream:
            held.extend(batch.messages)

    consumer = asyncio.create_task(take_and_never_acknowledge())
    try:
        for _ in range(0, OFFERED, 1000):
            results = await orders.send("billing", payloads(1000, SIZE))
            assert {r.WhichOneof("result") for r in results} == {"accepted"}
        for _ in range(300):
            if (await billing.stats()).receive_queue == RECEIVE_LIMIT:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # the sender retries what billing pushed back; nothing more may reach the app
        billing_stats, orders_stats = await billing.stats(), await orders.stats()
        grown = {name: rss_mb(sidecar) - idle[name] for name, sidecar in group.items()}
    finally:
        stream.cancel()
        await asyncio.gather(consumer, return_exceptions=True)

    print(f"\n[slow consumer] RSS idle {idle}, grown by {grown} MB with {OFFERED * SIZE >> 20} MB offered")
    assert len(held) == IN_FLIGHT  # its credit, and not one message more
    assert (billing_stats.receive_queue, billing_stats.in_flight) == (RECEIVE_LIMIT, IN_FLIGHT)
    assert orders_stats.send_queue == OFFERED - RECEIVE_LIMIT  # the rest waits at the sender, mostly in MongoDB
    # What waits in memory is bounded by receiveQueueLimit and GOQ_LANE_WINDOW (500 x 8 KiB = 4 MB each),
    # not by the 125 MB offered; the rest of the growth is the sender's burst buffers (batches of 500 being
    # stored: the requests, their envelopes and the BSON of one insert), the same for any amount offered.
    assert grown["billing"] < 32
    assert grown["orders"] < 48
