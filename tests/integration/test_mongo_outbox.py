"""The persistent outbox in a real MongoDB: messages with ids the sidecar made share one document per
batch (those waiting beyond the window, one per destination); those with the application's ids keep one
each. Deliveries
and failed attempts are recorded per member, a restart or an adoption resumes exactly what is left.

A "restart" is a second ``MongoStore`` of the same instance name over the same database.
"""

import time

from pymongo import AsyncMongoClient

from goq.identity import Address
from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.domain.records import Outgoing

from .conftest import OpenStore

Doc = dict[str, object]
ORDERS = Address.parse("orders.default")


def outgoing(number: int, *, generated: bool = True, spill: int = 0, destination: Address = ORDERS) -> Outgoing:
    return Outgoing(
        id=f"{number:04d}",
        destination=destination,
        body=f"body {number}".encode(),
        key_id="k1",
        signature=b"s" * 32,
        persistent=True,
        created_at=time.time() + number / 1000,
        generated=generated,
        spill=spill,
    )


async def settled(store: MongoStore) -> None:
    """Background writes (deliveries, failures) done."""
    await store.outbox.close()


async def documents(client: AsyncMongoClient[Doc], database: str) -> list[Doc]:
    return await client[database]["outbox"].find({}).to_list(None)


async def test_generated_ids_share_a_document_and_application_ids_keep_their_own(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store = await open_store()
    batch = [outgoing(n) for n in range(4)] + [outgoing(10, generated=False), outgoing(10, generated=False)]
    assert await store.outbox.add(batch) == [True, True, True, True, True, False]  # the repeated id
    docs = await documents(mongo_client, database)
    assert len(docs) == 2
    (group,) = [d for d in docs if "m" in d]
    assert [m["i"] for m in group["m"]] == ["0000", "0001", "0002", "0003"]


async def test_a_group_is_deleted_once_every_member_is_delivered_or_poisoned(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store = await open_store()
    batch = [outgoing(n) for n in range(3)]
    await store.outbox.add(batch)
    store.outbox.forget(["0000", "0002"])
    await settled(store)
    (doc,) = await documents(mongo_client, database)
    assert sorted(doc["x"]) == ["0000", "0002"]
    store.outbox.forget(["0001"])
    await settled(store)
    assert await documents(mongo_client, database) == []


async def test_a_restart_resumes_the_undelivered_members_with_their_failed_attempts(open_store: OpenStore) -> None:
    store = await open_store()
    first, second = [outgoing(n) for n in range(3)], [outgoing(n) for n in range(3, 5)]
    await store.outbox.add(first)
    await store.outbox.add(second)
    store.outbox.forget(["0001", "0003"])
    first[2].failed_attempts, first[2].next_at, first[2].last_error = 2, 123.5, "connection refused"
    store.outbox.record_failures([first[2]])
    await settled(store)
    again = await open_store()
    resumed = await again.outbox.recover()
    assert [m.id for m in resumed] == ["0000", "0002", "0004"]  # oldest first
    assert (resumed[1].failed_attempts, resumed[1].next_at, resumed[1].last_error) == (2, 123.5, "connection refused")
    assert (resumed[0].body, resumed[0].key_id, resumed[0].destination) == (b"body 0", "k1", ORDERS)
    again.outbox.forget([m.id for m in resumed])
    await settled(again)
    assert await (await open_store()).outbox.recover() == []


async def test_a_group_left_all_delivered_by_a_lost_delete_is_removed_at_the_restart(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store = await open_store()
    await store.outbox.add([outgoing(n) for n in range(2)])
    await mongo_client[database]["outbox"].update_many({}, {"$set": {"x": ["0000", "0001"]}})
    again = await open_store()
    assert await again.outbox.recover() == []
    await settled(again)
    assert await documents(mongo_client, database) == []


async def test_a_dead_replicas_groups_are_adopted_and_finished_by_the_adopter(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    dead = await open_store("billing-1")
    await dead.outbox.add([outgoing(n) for n in range(3)])
    dead.outbox.forget(["0000"])
    await settled(dead)
    alive = await open_store("billing-0")
    adopted, waiting = await alive.outbox.adopt(["billing-1"])
    assert ([m.id for m in adopted], waiting) == (["0001", "0002"], {})
    alive.outbox.forget(["0001", "0002"])
    await settled(alive)
    assert await documents(mongo_client, database) == []


async def test_messages_waiting_beyond_the_window_share_documents_per_destination_and_load_in_queue_order(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store = await open_store()
    audit = Address.parse("audit.default")
    batch = [
        outgoing(0, spill=1),
        outgoing(1, spill=2, destination=audit),
        outgoing(2, spill=3),
        outgoing(3, spill=4, generated=False),  # the application's id: a document of its own, in its place
        outgoing(4, spill=5),
    ]
    assert await store.outbox.add(batch) == [True] * 5
    assert await store.outbox.spilled_counts() == {str(ORDERS): 4, str(audit): 1}
    first = await store.outbox.load_spilled(str(ORDERS), 1)
    assert [m.id for m in first] == ["0000", "0002"]  # a whole group, though one message was asked for
    rest = await store.outbox.load_spilled(str(ORDERS), 10)
    assert [m.id for m in rest] == ["0003", "0004"]
    store.outbox.forget([m.id for m in first + rest])
    await settled(store)
    assert await store.outbox.spilled_counts() == {str(audit): 1}
    assert len(await documents(mongo_client, database)) == 1
