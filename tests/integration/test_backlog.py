"""A long outage of a destination: its sender keeps a bounded window in memory, the rest waits in MongoDB."""

import asyncio
import json
from collections import Counter
from collections.abc import Callable

from pymongo import AsyncMongoClient

from goq.devenv.sidecars import SidecarProcess

from .conftest import App
from .test_delivery import numbers, payloads
from .test_metrics import scrape

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]

WINDOW = 100
PATIENT = json.dumps({"maxAttempts": 1000, "initialBackoff": "100ms", "maxBackoff": "500ms", "maxAge": "1h"})


def stored_only(sidecar: SidecarProcess) -> float:
    return scrape(sidecar)[("goq_send_queue_stored_only_messages", (("identity", f"{sidecar.address}"),))]


async def waiting_in_mongodb(mongo_uri: str, database: str) -> int:
    """Messages stored with a place in the queue: a document of one, or a group's members."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri)
    try:
        docs = await client[database]["outbox"].find({"sp": {"$exists": True}}, {"m.i": 1}).to_list(None)
        return sum(len(doc["m"]) if "m" in doc else 1 for doc in docs)
    finally:
        await client.close()


async def test_beyond_its_memory_window_a_destinations_messages_wait_in_mongodb_and_arrive_in_order(
    sidecars: Sidecars, apps: Apps, mongo_uri: str, database: str
) -> None:
    group = sidecars("orders", "billing", start=False, GOQ_LANE_WINDOW=str(WINDOW), GOQ_RETRY_POLICY=PATIENT)
    group["orders"].start()  # billing is down
    orders = apps(group["orders"])
    results = await orders.send("billing", payloads(3000))
    assert [r.WhichOneof("result") for r in results] == ["accepted"] * 3000

    assert stored_only(group["orders"]) == 3000 - WINDOW
    assert await waiting_in_mongodb(mongo_uri, database) == 3000 - WINDOW
    assert (await orders.stats()).send_queue == 3000  # the send queue's bound counts both

    group["billing"].start()
    got = await apps(group["billing"]).receive(3000, within=120, distinct=True)
    arrived = numbers(got)
    assert sorted(set(arrived)) == list(range(3000))
    assert max(Counter(arrived).values()) == 1
    beyond = [n for n in arrived if n >= WINDOW]  # the first window was retried with jitter; the rest never failed
    assert beyond == sorted(beyond)
    for _ in range(100):
        if (await orders.stats()).send_queue == 0:
            break
        await asyncio.sleep(0.1)
    assert (await orders.stats()).send_queue == 0
    assert stored_only(group["orders"]) == 0


async def test_a_sender_killed_with_a_backlog_resumes_it_from_mongodb(sidecars: Sidecars, apps: Apps) -> None:
    group = sidecars("orders", "billing", start=False, GOQ_LANE_WINDOW=str(WINDOW), GOQ_RETRY_POLICY=PATIENT)
    group["orders"].start()
    await apps(group["orders"]).send("billing", payloads(2000))
    group["orders"].kill()

    group["orders"].start()
    resumed = f"resumed {WINDOW} outbound and 0 inbound persistent message(s); {2000 - WINDOW} more outbound wait"
    assert resumed in group["orders"].log()
    assert (await apps(group["orders"]).stats()).send_queue == 2000
    group["billing"].start()
    got = await apps(group["billing"]).receive(2000, within=120, distinct=True)
    assert sorted(set(numbers(got))) == list(range(2000))


async def test_a_replica_adopts_a_dead_replicas_backlog_without_loading_it_all(sidecars: Sidecars, apps: Apps) -> None:
    timing = {"GOQ_HEARTBEAT": "300ms", "GOQ_ADOPT_AFTER": "1s"}
    group = sidecars("orders", "billing", start=False, GOQ_LANE_WINDOW=str(WINDOW), GOQ_RETRY_POLICY=PATIENT, **timing)
    group["orders"].start()
    await apps(group["orders"]).send("billing", payloads(1000))
    group["orders"].kill()  # orders-0 dies with 100 in memory and 900 in the store only

    group["orders"].env["GOQ_INSTANCE"] = "orders-1"
    await asyncio.to_thread(group["orders"].start)
    for _ in range(200):
        if "adopted" in group["orders"].log():
            break
        await asyncio.sleep(0.1)
    assert "adopted 100 outbound (900 more wait in the store) and 0 inbound message(s)" in group["orders"].log()
    group["billing"].start()
    got = await apps(group["billing"]).receive(1000, within=120, distinct=True)
    assert sorted(set(numbers(got))) == list(range(1000))
