"""Thousands of withdrawals pending (a long outage fails many writes) stay exact and cheap to consult.

Recovery leaves out what a pending withdrawal names, through at most two ``$in`` clauses however many are
pending, and keeps every accepted document, also one whose application id a failed repeat named; whether
a document is being withdrawn is a lookup per id. Real mongod; the withdrawals are put in place directly
(their deletes would otherwise succeed at once on a healthy server).
"""

import time

from pymongo import AsyncMongoClient

from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.adapters.stores.mongo.withdrawals import _Withdrawals

from .conftest import Doc, OpenStore

FAILED_GROUPS = 3000
FAILED_WRITES = 300
SINGLES_PER_WRITE = 10
ACCEPTED = 500


def group_doc(store: MongoStore, n: int, *, prefix: str) -> Doc:
    member = {"i": f"{prefix}{n}", "d": "billing.default", "c": time.time(), "b": b"x", "k": "k1", "s": b"s"}
    return {"_id": store.key(f"g{prefix}{n:06d}"), "h": store.instance, "m": [member]}


def single_doc(store: MongoStore, message_id: str, token: str) -> Doc:
    return {"_id": store.key(message_id), "w": token, "h": store.instance, "d": "billing.default",
            "c": time.time(), "a": 0, "n": 0.0, "b": b"x", "k": "k1", "s": b"s"}  # fmt: skip


async def test_thousands_of_pending_withdrawals_leave_out_exactly_their_documents_from_recovery(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store = await open_store("billing-0")
    outbox = mongo_client[database]["outbox"]
    failed = [group_doc(store, n, prefix="failed") for n in range(FAILED_GROUPS)]
    failed += [
        single_doc(store, f"app-{w}-{n}", f"t{w:04d}") for w in range(FAILED_WRITES) for n in range(SINGLES_PER_WRITE)
    ]
    accepted = [group_doc(store, n, prefix="kept") for n in range(ACCEPTED)]
    # Accepted sends of ids that failed repeats named too: their withdrawal filters match no document.
    accepted += [single_doc(store, f"app-again-{n}", f"ok{n:04d}") for n in range(ACCEPTED)]
    await outbox.insert_many([*failed, *accepted])
    withdrawals: _Withdrawals = store.outbox._withdrawals
    filters = [{"_id": d["_id"], "w": d["w"]} if "w" in d else {"_id": d["_id"]} for d in failed]
    filters += [{"_id": store.key(f"app-again-{n}"), "w": f"t{n % FAILED_WRITES:04d}"} for n in range(ACCEPTED)]
    for query in filters:
        withdrawals._put((str(query["_id"]), str(query.get("w", ""))), query)

    assert len(withdrawals.withheld()) <= 2, "one clause per pending withdrawal: grows with the outage"
    recovered = {m.id for m in await store.outbox.recover()}
    expected = {f"kept{n}" for n in range(ACCEPTED)} | {f"app-again-{n}" for n in range(ACCEPTED)}
    assert recovered == expected

    ids = [str(d["_id"]) for d in failed + accepted]
    started = time.perf_counter()
    for _ in range(100):
        being_withdrawn = set(withdrawals.pending(ids))
    per_call = (time.perf_counter() - started) / 100
    assert being_withdrawn == {str(d["_id"]) for d in failed} | {store.key(f"app-again-{n}") for n in range(ACCEPTED)}
    assert per_call < 0.05, f"pending() took {per_call * 1000:.1f} ms for {len(ids)} ids"

    # Deleted once, still withdrawn (an insert applied late); deleted again, no longer.
    first = dict(list(withdrawals._pending.items())[:1000])
    assert await withdrawals._delete(first)
    assert set(withdrawals.pending(list(ids))) == being_withdrawn
    assert await withdrawals._delete(first)
    gone = {key[0] for key in first}
    assert set(withdrawals.pending(list(ids))) == being_withdrawn - gone
    assert await outbox.count_documents({"_id": {"$in": sorted(gone)}}) == 0
