"""The persistent inbox in a real MongoDB: messages stored in groups, de-duplicated by key, acknowledged
member by member, recovered after a restart, adopted from a dead replica, and restored after a redrive.

Each test opens the store as a sidecar does (``MongoStore.open``) on a database of its own; a "restart"
is a second ``MongoStore`` of the same instance name over the same database.
"""

import asyncio
import time

from pymongo import AsyncMongoClient
from pymongo.read_concern import ReadConcern

from goq.identity import Address
from goq.messages import Message
from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.domain.records import Incoming, inbound_key

from .conftest import OpenStore

Doc = dict[str, object]
ORDERS = Address.parse("orders.default")
BILLING = Address.parse("billing.default")


def incoming(number: int) -> Incoming:
    message = Message(
        id=f"m{number}", source=ORDERS, destination=BILLING, created_at_ms=int(time.time() * 1000), payload=b"x"
    )
    body = message.encode()
    return Incoming(
        key=inbound_key(ORDERS, message.id),
        message=message,
        body=body,
        key_id="k1",
        signature=b"s" * 32,
        received_at=time.time() + number / 1000,
    )


async def settled(store: MongoStore) -> None:
    """Background writes (acknowledgements) done."""
    await store.inbox.close()


async def test_a_batch_is_stored_in_one_document_and_a_redelivery_is_a_duplicate(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store: MongoStore = await open_store()
    batch = [incoming(n) for n in range(5)]
    assert await store.inbox.add(batch) == [True] * 5
    assert await mongo_client[database]["inbox"].count_documents({}) == 1
    store.inbox.acknowledge([batch[0].key])
    await settled(store)
    # Sent again with one new message: the consumed one is a duplicate, so is one held by this instance
    # in memory (Inbound never asks for those), and the new one is stored.
    assert await store.inbox.add([batch[0], incoming(9)]) == [False, True]


async def test_a_group_becomes_a_tombstone_once_every_member_is_acknowledged(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store: MongoStore = await open_store()
    batch = [incoming(n) for n in range(3)]
    await store.inbox.add(batch)
    store.inbox.acknowledge([batch[0].key, batch[1].key])
    await settled(store)
    (doc,) = await mongo_client[database]["inbox"].find({}).to_list(None)
    assert (doc["st"], sorted(doc["x"]), "t" in doc) == ("r", sorted([batch[0].key, batch[1].key]), False)
    store.inbox.acknowledge([batch[2].key])
    await settled(store)
    (doc,) = await mongo_client[database]["inbox"].find({}).to_list(None)
    assert (doc["st"], "m" in doc, "t" in doc) == ("x", False, True)  # payloads dropped, expiry set
    assert sorted(doc["ks"]) == sorted(m.key for m in batch)  # keys kept for de-duplication
    assert await store.inbox.add(batch) == [False, False, False]


async def test_a_restart_recovers_only_the_unacknowledged_members_oldest_first(
    open_store: OpenStore,
) -> None:
    store: MongoStore = await open_store()
    first, second = [incoming(n) for n in range(3)], [incoming(n) for n in range(3, 5)]
    await store.inbox.add(first)
    await store.inbox.add(second)
    store.inbox.acknowledge([first[1].key, second[0].key])
    await settled(store)
    again: MongoStore = await open_store()
    recovered = await again.inbox.recover()
    assert [m.id for m in recovered] == ["m0", "m2", "m4"]
    assert recovered[0].body == first[0].body
    assert (recovered[0].key_id, recovered[0].signature) == ("k1", b"s" * 32)
    # What was recovered is acknowledged as before: the first group becomes a tombstone.
    again.inbox.acknowledge([m.key for m in recovered])
    await settled(again)
    assert await again.inbox.recover() == []


async def test_a_write_whose_answer_was_lost_is_taken_back_with_all_its_unacknowledged_members(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store: MongoStore = await open_store()
    batch = [incoming(n) for n in range(3)]
    await store.inbox.add(batch)
    # A new life of the same instance that never saw that write's answer: the sender sends two again.
    again: MongoStore = await open_store()
    assert await again.inbox.add(batch[:2]) == [True, True]
    again.inbox.acknowledge([batch[0].key, batch[1].key])
    await settled(again)
    # The third member is still waiting: the document is no tombstone, and the third arrives as new.
    (doc,) = await mongo_client[database]["inbox"].find({}).to_list(None)
    assert doc["st"] == "r"
    assert await again.inbox.add([batch[2]]) == [True]
    again.inbox.acknowledge([batch[2].key])
    await settled(again)
    assert await mongo_client[database]["inbox"].count_documents({"st": "x"}) == 1


async def test_messages_held_by_another_live_instance_are_duplicates_and_adopted_once_it_dies(
    open_store: OpenStore,
) -> None:
    dead: MongoStore = await open_store("billing-1")
    batch = [incoming(n) for n in range(2)]
    await dead.inbox.add(batch)
    dead.inbox.acknowledge([batch[0].key])
    await settled(dead)
    alive: MongoStore = await open_store("billing-0")
    assert await alive.inbox.add(batch) == [False, False]
    adopted = await alive.inbox.adopt(["billing-1"])
    assert [m.id for m in adopted] == ["m1"]
    alive.inbox.acknowledge([adopted[0].key])
    await settled(alive)
    assert await alive.inbox.recover() == []


async def test_a_redriven_message_is_stored_again_though_its_key_was_consumed(
    open_store: OpenStore,
) -> None:
    store: MongoStore = await open_store()
    batch = [incoming(n) for n in range(2)]
    await store.inbox.add(batch)
    store.inbox.acknowledge([m.key for m in batch])  # the first was poisoned: acknowledged as done
    await settled(store)
    await store.inbox.restore([batch[0]])
    assert [m.id for m in await (await open_store()).inbox.recover()] == ["m0"]  # type: ignore[attr-defined]
    assert await store.inbox.add([batch[1]]) == [False]  # the other one's key is still remembered


async def test_documents_of_one_message_from_before_groups_are_recovered_and_acknowledged(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    old = incoming(1)
    owner = "billing.default"
    legacy = {
        "_id": f"{owner}|{old.key}",
        "h": "billing-0",
        "st": "r",
        "r": old.received_at,
        "dl": 0,
        "b": old.body,
        "k": "k1",
        "s": old.signature,
    }
    await mongo_client[database]["inbox"].insert_one(legacy)
    store: MongoStore = await open_store()
    (recovered,) = await store.inbox.recover()
    assert (recovered.key, recovered.body, recovered.key_id) == (old.key, old.body, "k1")
    store.inbox.acknowledge([recovered.key])
    await settled(store)
    doc = await mongo_client[database]["inbox"].find_one({"_id": legacy["_id"]})
    assert doc is not None
    assert (doc["st"], "b" in doc, "t" in doc) == ("x", False, True)
    # While such documents exist, a redelivery of a message they hold (consumed, as here) is recognised. The
    # check reads majority-committed documents: wait until the tombstone (a w:1 write) is one.
    majority = mongo_client[database].get_collection("inbox", read_concern=ReadConcern("majority"))
    for _ in range(100):
        if (await majority.find_one({"_id": legacy["_id"], "st": "x"})) is not None:
            break
        await asyncio.sleep(0.05)
    again = await open_store()
    assert await again.inbox.add([old, incoming(2)]) == [False, True]
