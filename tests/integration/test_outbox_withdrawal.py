"""An outbox write that fails in appearance but lands is withdrawn, and only what it created.

On a real three-member replica set with both secondaries killed, the primary applies an insert and the
majority wait fails (the client's timeout): ``MongoOutbox.add`` raises, the documents stay. Once a majority
is back, the outbox deletes them; an earlier accepted send of the same application id keeps its document
(the failed write's copy clashed with it, and its withdrawal is by ``_id`` and write token).
"""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from pymongo.read_concern import ReadConcern

from goq.devenv.replica_set import MongoReplicaSet
from goq.identity import Address
from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.domain.records import Outgoing
from goq.sidecar.ports.stores import StoreUnavailableError

Doc = dict[str, object]
BILLING = Address.parse("billing.default")
DATABASE = "goq_withdrawal"


@pytest.fixture
async def client(replica_set: MongoReplicaSet) -> AsyncIterator[AsyncMongoClient[Doc]]:
    async with AsyncMongoClient[Doc](replica_set.uri, timeoutMS=1000) as connected:
        yield connected


def message(message_id: str, *, generated: bool) -> Outgoing:
    return Outgoing(
        id=message_id,
        destination=BILLING,
        body=message_id.encode(),
        key_id="k1",
        signature=b"s" * 32,
        persistent=True,
        created_at=time.time(),
        generated=generated,
    )


async def opened(client: AsyncMongoClient[Doc]) -> MongoStore:
    store = MongoStore(client, DATABASE, "orders.default", "orders-0", dedupe_window=3600)
    await store.open()
    return store


async def outbox_ids(client: AsyncMongoClient[Doc]) -> dict[str, object]:
    """Every outbox document's ``_id`` with its write token, as a majority has them."""
    outbox = client[DATABASE].get_collection("outbox", read_concern=ReadConcern("majority"))
    return {str(d["_id"]): d.get("w") for d in await outbox.find({}, {"w": 1}).to_list(None)}


async def test_a_failed_write_that_landed_is_withdrawn_but_an_earlier_send_of_the_same_id_stays(
    replica_set: MongoReplicaSet, client: AsyncMongoClient[Doc]
) -> None:
    store = await opened(client)
    assert await store.outbox.add([message("x", generated=False)]) == [True]
    (earlier_token,) = (await outbox_ids(client)).values()

    primary = replica_set.primary()
    secondaries = [i for i in range(3) if i != primary]
    for index in secondaries:
        await asyncio.to_thread(replica_set.kill_member, index)
    failing = [message("x", generated=False), message("y", generated=False), message("g", generated=True)]
    with pytest.raises(StoreUnavailableError, match="durable"):
        await store.outbox.add(failing)
    for index in secondaries:
        await asyncio.to_thread(replica_set.restart_member, index)
    await asyncio.to_thread(replica_set.wait_for_primary, 60)

    deadline = time.monotonic() + 30
    while (found := await _ids_or_none(client)) is None or len(found) > 1:
        assert time.monotonic() < deadline, f"the failed write's documents are still there: {found}"
        await asyncio.sleep(0.5)
    assert found == {"orders.default|x": earlier_token}, "the earlier send's document must stay"

    assert await store.outbox.add([message("y", generated=False)]) == [True]  # sent again: stored anew
    await store.outbox.close()
    restarted = await opened(client)
    assert sorted(m.id for m in await restarted.outbox.recover()) == ["x", "y"]
    await restarted.outbox.close()


async def _ids_or_none(client: AsyncMongoClient[Doc]) -> dict[str, object] | None:
    """``outbox_ids``, or None while the set cannot answer (a member still catching up)."""
    try:
        return await outbox_ids(client)
    except PyMongoError:
        return None
