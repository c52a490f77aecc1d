"""At start, the store withdraws what its journal says a run that died left pending, before recovery; what it
cannot withdraw yet is left out of recovery and of the waiting records it loads (real mongod)."""

import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from goq.identity import Address
from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.adapters.stores.withdrawal_journal import JOURNAL_FILE, WithdrawalJournal
from goq.sidecar.domain.records import Outgoing

Doc = dict[str, Any]
BILLING = Address.parse("billing.default")


def message(message_id: str, *, generated: bool = True, spill: int = 0) -> Outgoing:
    return Outgoing(
        id=message_id,
        destination=BILLING,
        body=message_id.encode(),
        key_id="k1",
        signature=b"s" * 32,
        persistent=True,
        created_at=time.time(),
        generated=generated,
        spill=spill,
    )


def store(client: AsyncMongoClient[Doc], database: str, journal: Path | None) -> MongoStore:
    return MongoStore(
        client,
        database,
        "orders.default",
        "orders-0",
        dedupe_window=3600,
        journal=WithdrawalJournal(journal) if journal else None,
    )


async def filter_of(client: AsyncMongoClient[Doc], database: str, message_id: str) -> Doc:
    """The withdrawal filter of the outbox document holding ``message_id`` (as ``_Withdrawals`` makes it)."""
    doc = await client[database]["outbox"].find_one(
        {"$or": [{"m.i": message_id}, {"_id": f"orders.default|{message_id}"}]}, {"w": 1}
    )
    assert doc is not None, message_id
    return {"_id": doc["_id"], "w": doc["w"]} if "w" in doc else {"_id": doc["_id"]}


async def test_documents_the_journal_names_are_deleted_before_recovery(
    mongo_client: AsyncMongoClient[Doc], database: str, tmp_path: Path
) -> None:
    journal = tmp_path / JOURNAL_FILE
    first = store(mongo_client, database, None)
    await first.open()
    for m in (message("refused"), message("accepted"), message("refused-id", generated=False)):
        await first.outbox.add([m])  # each its own write: the documents of a failed one are only its own
    died_with = [await filter_of(mongo_client, database, i) for i in ("refused", "refused-id")]
    await WithdrawalJournal(journal).record("outbox", died_with)
    await first.outbox.close()

    restarted = store(mongo_client, database, journal)
    await restarted.open()
    assert [m.id for m in await restarted.outbox.recover()] == ["accepted"]
    remaining = await mongo_client[database]["outbox"].find({}, {"_id": 1}).to_list(None)
    assert [d["_id"] for d in remaining] == [(await filter_of(mongo_client, database, "accepted"))["_id"]]
    assert WithdrawalJournal(journal).load() == {}, "confirmed withdrawals leave the journal"
    await restarted.outbox.close()


async def test_documents_not_withdrawn_yet_are_neither_recovered_nor_loaded_from_the_store(
    mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    first = store(mongo_client, database, None)
    await first.open()
    await first.outbox.add([message("held")])
    await first.outbox.add([message("withheld")])
    await first.outbox.add([message("waiting", spill=1)])
    await first.outbox.add([message("withheld-waiting", spill=2)])
    withheld = [await filter_of(mongo_client, database, i) for i in ("withheld", "withheld-waiting")]

    _, claimed = await first.claim("outbox", ["orders-0"], waiting=False, withheld=withheld)
    assert [m["i"] for doc in claimed for m in doc["m"]] == ["held"]
    assert await first.count_waiting({"$nor": withheld}) == {str(BILLING): 1}
    loaded = await first.take_waiting(str(BILLING), 10, withheld)
    assert [m["i"] for doc in loaded for m in doc["m"]] == ["waiting"]
    await first.outbox.close()
