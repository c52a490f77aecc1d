"""The persistent store: one identity's outbox and inbox in MongoDB.

Layout: every document's ``_id`` starts with the owner (``<identity>.<namespace>|``), so one
identity's messages sit together in the ``_id`` index and recovery is one range scan, with no extra
index to slow inserts. ``h`` names the sidecar instance that holds a record; when an instance stops
heartbeating, another replica of the same identity adopts its records.

Writes the delivery promise depends on (a send, a receipt) are majority writes, grouped; writes whose
loss only causes a redelivery (a delete after delivery, an acknowledgement) go in the background.
Acknowledged inbox records stay as small tombstones for the dedupe window (TTL index), so a late
redelivery is still recognised. Payloads and signatures are stored as plain ``bytes`` (BSON binary
subtype 0): wrapping them in ``bson.Binary`` first cost a tenth of a sidecar's CPU at full rate.
"""

import asyncio
import contextlib
import datetime
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Final, TypeVar

import pymongo
from pymongo import AsyncMongoClient, DeleteMany, DeleteOne, UpdateMany, UpdateOne, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError
from pymongo.read_concern import ReadConcern

from goq.freshness import remembered_for
from goq.identity import Address
from goq.messages import Message
from goq.sidecar.batching import GroupCommitter
from goq.sidecar.records import Incoming, Outgoing
from goq.sidecar.stores.base import Claimed, StoreUnavailableError
from goq.sidecar.stores.withdrawal_journal import JournalError, WithdrawalJournal, filter_key

log = logging.getLogger("goq.sidecar.store")

Doc = dict[str, Any]
_DUPLICATE_KEY: Final = 11000
_AFTER_SEPARATOR: Final = "}"  # the character after "|": bounds an owner's _id range
WAITING_STEP: Final = 8
"""Waiting documents read (by their counts) in the first round of a load; each next round reads 4x more."""
RECOVERY_TIMEOUT: Final = 300.0
"""Seconds the scans of a restart or an adoption may take (a backlog of millions), not GOQ_STORE_TIMEOUT."""
DURABLE_WRITERS: Final = 1
"""Majority writes of one kind in flight at once (results still in order; see ``GroupCommitter``). Two or
three measured worse at a fixed 1,000 msg/s (p50 7.5 ms -> 9.4-13.5): more, smaller writes, each waiting
for a journal flush, on a machine the sidecars and mongod already keep busy."""
BACKGROUND_LINGER: Final = 0.025
"""Seconds background writes wait to be grouped: deletes after delivery and acknowledgements."""
REPEAT_CHECKS: Final = 5
REPEAT_CHECK_INTERVAL: Final = 0.1
"""How often, and how far apart, a repeated application id's earlier document is looked for at the majority
level before the repeat is refused as not durable yet (see ``MongoOutbox._not_durable``)."""
PROGRESS_DELAY: Final = 2.0
"""Seconds before the members done in an unfinished group document are written (see ``_Progress``)."""
CLASH_TRIES: Final = 5
CLASH_PAUSE: Final = (0.05, 0.4)
"""How often a received group whose insert clashed is looked at again, and the pauses between (the first, the
most; doubled each time): the document it clashed with may be a concurrent write not majority-committed yet,
invisible to the majority read until it is (see ``MongoInbox._add_clashing``)."""
WITHDRAW_BACKOFF: Final = (0.2, 1.0)
"""Seconds between tries of a withdrawal's delete while MongoDB fails it: the first, and the most. Short: until
it is confirmed, a crash of this sidecar delivers the refused messages after its restart, and one delete a
second costs a MongoDB that is down nothing."""
WITHDRAW_AGAIN: Final = 10.0
"""Seconds after a withdrawal's confirmed delete that it is made once more: a stalled server (or one whose
connection the client gave up on) may apply the failed insert after the first delete."""


class MongoStore:
    """An identity's persistent records, held by one sidecar instance (the engine's ``Custody``)."""

    refusal: str | None = None
    """Persistent messages are kept here."""

    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        owner: str,
        instance: str,
        *,
        dedupe_window: float,
        stale_after: float = 20.0,
        journal: WithdrawalJournal | None = None,
    ) -> None:
        self.owner = owner
        self.instance = instance
        self.stale_after = stale_after
        self.journal = journal
        """Where withdrawals of failed writes are remembered across a crash (see ``_Withdrawals``); None: not."""
        db = client[database]
        majority = WriteConcern(w="majority")
        background = WriteConcern(w=1)
        self._outbox_durable: AsyncCollection[Doc] = db.get_collection(
            "outbox", write_concern=majority, read_concern=ReadConcern("majority")
        )
        self._outbox: AsyncCollection[Doc] = db.get_collection("outbox", write_concern=background)
        # Reads that decide an answer to a sender (is this a duplicate? is it ours?) see only majority-committed
        # documents: a write that failed in appearance may sit on a primary alone, and be rolled back by an
        # election after the sender was told it is held.
        self._inbox_durable: AsyncCollection[Doc] = db.get_collection(
            "inbox", write_concern=majority, read_concern=ReadConcern("majority")
        )
        self._inbox: AsyncCollection[Doc] = db.get_collection("inbox", write_concern=background)
        self._instances: AsyncCollection[Doc] = db.get_collection("instances", write_concern=background)
        self.outbox = MongoOutbox(self)
        self.inbox = MongoInbox(self, dedupe_window)

    def key(self, local: str) -> str:
        """The ``_id`` of this owner's record ``local``."""
        return f"{self.owner}|{local}"

    def owned(self) -> Doc:
        """A filter for this owner's records."""
        return {"_id": {"$gte": f"{self.owner}|", "$lt": f"{self.owner}{_AFTER_SEPARATOR}"}}

    async def open(self) -> None:
        """Create indexes, announce this instance, and withdraw what a run that died left pending (its
        journal): before anything is recovered, which would deliver those refused messages."""
        try:
            await self._inbox.create_index("t", expireAfterSeconds=0, sparse=True, name="tombstone_ttl")
            await self.inbox.open()
            # Only messages waiting beyond a memory window are in it, so ordinary inserts do not pay for it.
            await self._outbox.create_index(
                [("h", 1), ("d", 1), ("sp", 1)], partialFilterExpression={"sp": {"$exists": True}}, name="waiting"
            )
            await self.announce()
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB not reachable: {exc}") from exc
        if self.journal is not None:
            left = await asyncio.to_thread(self.journal.load)
            await self.outbox.resume_withdrawals(left.get("outbox", []))
            await self.inbox.resume_withdrawals(left.get("inbox", []))

    async def resume(self) -> Claimed:
        """Open, then claim this instance's own records: those to deliver and receive now, and count those
        that wait in the store only."""
        await self.open()
        outgoing = await self.outbox.recover()
        waiting = await self.outbox.spilled_counts()
        incoming = await self.inbox.recover()
        return Claimed(outgoing, incoming, waiting, [self.instance])

    async def heartbeat(self) -> Claimed:
        """Announce this instance, and adopt the records of other instances of its identity that stopped."""
        await self.announce()
        stale = await self.stale_instances()
        if not stale:
            return Claimed()
        outgoing, waiting = await self.outbox.adopt(stale)
        incoming = await self.inbox.adopt(stale)
        await self.forget_instances(stale)
        return Claimed(outgoing, incoming, waiting, stale)

    async def announce(self) -> None:
        """Tell other replicas this instance is alive (so they do not adopt its records)."""
        now = datetime.datetime.now(datetime.UTC)
        await self._instances.update_one(
            {"_id": self.key(self.instance)}, {"$set": {"o": self.owner, "at": now}}, upsert=True
        )

    async def stale_instances(self) -> list[str]:
        """Other instances of this identity that stopped heartbeating."""
        cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=self.stale_after)
        docs = await self._instances.find({"o": self.owner, "at": {"$lt": cutoff}}).to_list(None)
        return [d["_id"].split("|", 1)[1] for d in docs if d["_id"] != self.key(self.instance)]

    async def claim(
        self, collection: str, holders: Sequence[str], *, waiting: bool = True, withheld: list[Doc] | None = None
    ) -> tuple[str, list[Doc]]:
        """Take over the records of ``holders`` (this instance's own earlier life included).

        Returns the claim's token and the records to hold in memory: without ``waiting``, those that wait
        in the store only (outbox records with a spill sequence) are claimed but not read. Documents that
        ``withheld`` filters match (failed writes not withdrawn yet) are neither claimed nor read.
        """
        token = os.urandom(8).hex()
        coll = self._outbox if collection == "outbox" else self._inbox
        query: Doc = {**self.owned(), "h": {"$in": list(holders)}, **_without(withheld or [])}
        if collection == "inbox":
            query["st"] = "r"
        if not waiting and holders == [self.instance]:
            query["sp"] = {"$exists": False}  # its own waiting records are this instance's already
        read: Doc = {**self.owned(), "cl": token}
        if not waiting:
            read["sp"] = {"$exists": False}
        with pymongo.timeout(RECOVERY_TIMEOUT):  # scans the whole backlog: longer than a write may take
            await coll.update_many(query, {"$set": {"h": self.instance, "cl": token}})
            return token, await coll.find(read).to_list(None)

    async def count_waiting(self, extra: Doc) -> dict[str, int]:
        """Outbox records that wait in the store only, per destination."""
        match = {**self.owned(), "h": self.instance, "sp": {"$exists": True}, **extra}
        messages = {"$ifNull": ["$mc", 1]}  # a waiting group holds ``mc``, a document of its own one
        pipeline = [{"$match": match}, {"$group": {"_id": "$d", "n": {"$sum": messages}}}]
        try:
            with pymongo.timeout(RECOVERY_TIMEOUT):
                docs = await (await self._outbox.aggregate(pipeline)).to_list(None)
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB could not count waiting messages: {exc}") from exc
        return {doc["_id"]: doc["n"] for doc in docs}

    async def take_waiting(self, destination: str, limit: int, withheld: list[Doc] | None = None) -> list[Doc]:
        """The oldest waiting records for ``destination``, no longer marked waiting: whole documents, as
        many as hold ``limit`` messages (the last group may take it over by less than a batch); none that
        ``withheld`` filters match."""
        try:
            chosen = await self._first_waiting(destination, limit, withheld or [])
            if not chosen:
                return []
            docs = await self._outbox.find({"_id": {"$in": chosen}}).sort("sp", 1).to_list(None)
            await self._outbox.update_many({"_id": {"$in": chosen}}, {"$unset": {"sp": ""}})
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB could not load waiting messages: {exc}") from exc
        return docs

    async def _first_waiting(self, destination: str, limit: int, withheld: list[Doc]) -> list[str]:
        """The ``_id``s of the oldest waiting documents that hold ``limit`` messages, read by their message
        counts (``mc``), a few at first and more each round: a group is a whole batch's bodies, and reading
        a thousand of them to pick two cost more than the delivery."""
        query: Doc = {
            "h": self.instance,
            "d": destination,
            "sp": {"$exists": True},
            **self.owned(),
            **_without(withheld),
        }
        chosen: list[str] = []
        count, step = 0, WAITING_STEP
        while count < limit:
            heads = await self._outbox.find(query, {"mc": 1, "sp": 1}).sort("sp", 1).limit(step).to_list(None)
            for head in heads:
                if count >= limit:
                    break
                chosen.append(head["_id"])
                count += head.get("mc", 1)  # a document of one message has no count
            if len(heads) < step:
                break
            query["sp"] = {"$gt": heads[-1]["sp"]}
            step *= 4
        return chosen

    async def forget_instances(self, instances: Sequence[str]) -> None:
        await self._instances.delete_many({"_id": {"$in": [self.key(i) for i in instances]}})


def _inserted(error: BulkWriteError, count: int) -> list[bool]:
    """Per document, whether ``insert_many(ordered=False)`` stored it; duplicates are not errors here.

    A write concern error (the majority did not confirm in time, or an election interrupted the wait) means
    none of the inserts is known to be durable: the whole write failed, whatever was inserted."""
    if concern := error.details.get("writeConcernErrors"):
        raise StoreUnavailableError(
            f"MongoDB could not make the messages durable: {concern[0].get('errmsg')}"
        ) from error
    results = [True] * count
    for failure in error.details.get("writeErrors", []):
        if failure.get("code") != _DUPLICATE_KEY:
            raise StoreUnavailableError(f"MongoDB refused a write: {failure.get('errmsg')}") from error
        results[failure["index"]] = False
    return results


async def _insert_new(collection: AsyncCollection[Doc], docs: list[Doc]) -> list[bool]:
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        return _inserted(exc, len(docs))
    except PyMongoError as exc:
        raise StoreUnavailableError(f"MongoDB could not make the messages durable: {exc}") from exc
    return [True] * len(docs)


async def _background(collection: AsyncCollection[Doc], operations: list[Any]) -> list[None]:
    try:
        await collection.bulk_write(operations, ordered=False)
    except PyMongoError as exc:
        log.warning(
            "background write of %d operation(s) failed (%s); they repeat after a restart", len(operations), exc
        )
    return [None] * len(operations)


class _Progress:
    """Members done in group documents that are not finished yet, written only if still unfinished a
    moment later: most groups finish within milliseconds, and then their delete or tombstone says it all
    (rewriting a large document for each part done cost MongoDB more than the documents saved). Lost
    with a crash, progress only means redelivery: the receiver de-duplicates, the application may see
    again what it had acknowledged (as with any acknowledgement written in the background)."""

    def __init__(self, updates: "GroupCommitter[Any, None]") -> None:
        self._updates = updates
        self._pending: dict[str, list[str]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, doc_id: str, done: list[str]) -> None:
        self._pending.setdefault(doc_id, []).extend(done)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(PROGRESS_DELAY, self.flush)

    def finished(self, doc_id: str) -> None:
        self._pending.pop(doc_id, None)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, {}
        self._updates.submit_nowait(
            [UpdateOne({"_id": d}, {"$addToSet": {"x": {"$each": ids}}}) for d, ids in pending.items()]
        )


class _Withdrawals:
    """Documents of writes that failed in appearance, deleted until MongoDB confirms the delete.

    A write the client saw fail (a killed primary reset the connection, the majority did not confirm in
    time) may have landed all the same. Its send is refused, so its documents must go: a restart
    (``recover``) or another replica's adoption would deliver them. Each is deleted by a filter that
    matches only what the failed write created: a group by its random ``_id``, a message of the
    application's id by ``_id`` and the write's token (``w``; an earlier accepted send of that id holds
    the ``_id`` with another token, or none). Majority deletes, tried again with backoff while the
    sidecar runs (MongoDB may be down for a while), once more at ``close``; and once more ``WITHDRAW_AGAIN``
    seconds after the first confirmed one, for an insert MongoDB applied late.

    The filters are written to the sidecar's journal of pending withdrawals (``withdrawal_journal``), on
    local disk, before ``add`` returns and the refusal is answered, and dropped from it once the delete is
    confirmed. A sidecar killed before that finds them there at its next start (``resume``, from
    ``MongoStore.open``), deletes them before its recovery claims anything, and, if MongoDB cannot confirm
    that delete yet, leaves them out of what it recovers or loads (``withheld``) until it can.

    The inbox withdraws its failed writes the same way (a receiver answered "retry later" for them, and
    the sender may have given up on them since, its own send refused); a repeat that clashes with a
    document being withdrawn is answered "retry later" again, never held in that document.

    Left open: a journal that does not survive the restart (no ``GOQ_SPILL_DIR``: see the journal's
    module), or could not be written (logged); a replica that adopts this instance's records (it died for
    good, or could not reach MongoDB for ``stale_after``): the journal is local to this instance, the
    adopter never sees it; and an insert a server applies later than ``WITHDRAW_AGAIN`` after the first
    delete."""

    def __init__(self, collection: AsyncCollection[Doc], name: str, journal: WithdrawalJournal | None) -> None:
        self._collection = collection
        self._name = name
        self._journal = journal
        self._pending: dict[tuple[str, str], Doc] = {}
        """Per document ``_id`` and write token (``filter_key``), the filter that deletes it: two failed writes
        of one application id each have a withdrawal of their own."""
        self._again: dict[tuple[str, str], tuple[float, Doc]] = {}
        """Deleted once: when to delete each again, and its filter."""
        self._keys_of: dict[str, set[tuple[str, str]]] = {}
        """Per document ``_id``, its keys in ``_pending`` or ``_again``: ``pending`` looks ids up, never scans."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def add(self, docs: list[Doc]) -> None:
        """Delete ``docs`` (of one failed write) in the background; returns once the journal holds their
        filters, so that the refusal answered next survives a crash of this sidecar."""
        if not docs:
            return
        filters = [{"_id": doc["_id"], "w": doc["w"]} if "w" in doc else {"_id": doc["_id"]} for doc in docs]
        self._withdraw(filters)
        if self._journal is None:
            return
        try:
            await self._journal.record(self._name, filters)
        except JournalError as exc:
            log.error(
                "%s: if this sidecar dies before %d %s document(s) are withdrawn, it delivers them after its restart",
                exc,
                len(filters),
                self._name,
            )

    async def resume(self, filters: list[Doc]) -> None:
        """At start, before recovery: delete what a run that died left pending (its journal). What MongoDB
        does not confirm now stays ``withheld`` from recovery and is deleted in the background."""
        if not filters:
            return
        for query in filters:
            self._put(filter_key(query), query)
        if not await self._delete(dict(self._pending)):
            log.warning(
                "%d %s document(s) of failed writes left by the previous run are not withdrawn yet: left out of "
                "recovery until they are",
                len(self._pending),
                self._name,
            )
        self._start()

    def withheld(self) -> list[Doc]:
        """Filters of the documents whose withdrawal is not confirmed: recovery and loads leave them out.

        At most two, however many are pending (a long outage fails many writes): the ``_id``s of documents
        withdrawn by ``_id`` alone, and those withdrawn by ``_id`` and write token (``w``) with those tokens,
        each an ``$in`` MongoDB matches by lookup, where one clause per document made each document's match
        cost as much as the outage was long. Exact all the same: a token is one failed write's, so a document
        with a pending ``_id`` and a pending token is that write's own (every document of a failed write is
        withdrawn together)."""
        plain = sorted({query["_id"] for query in self._pending.values() if "w" not in query})
        singles = [query for query in self._pending.values() if "w" in query]
        clauses: list[Doc] = [{"_id": {"$in": plain}}] if plain else []
        if singles:
            ids, tokens = sorted({q["_id"] for q in singles}), sorted({q["w"] for q in singles})
            clauses.append({"_id": {"$in": ids}, "w": {"$in": tokens}})
        return clauses

    def pending(self, doc_ids: list[str]) -> list[str]:
        """Those of ``doc_ids`` whose withdrawal is not confirmed yet (deleted once counts as not yet)."""
        return [doc_id for doc_id in doc_ids if doc_id in self._keys_of]

    def _withdraw(self, filters: list[Doc]) -> None:
        for query in filters:
            self._put(filter_key(query), query)
        self._start()

    def _put(self, key: tuple[str, str], query: Doc) -> None:
        self._pending[key] = query
        self._keys_of.setdefault(key[0], set()).add(key)

    def _done(self, key: tuple[str, str]) -> None:
        """``key`` left ``_pending`` or ``_again``: its ``_id`` is no longer withdrawn unless it is in the other."""
        if key in self._pending or key in self._again:
            return
        keys = self._keys_of.get(key[0])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys_of[key[0]]

    def _start(self) -> None:
        self._wake.set()
        if (self._pending or self._again) and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self._name} withdrawals")

    async def _run(self) -> None:
        pause = WITHDRAW_BACKOFF[0]
        while self._pending or self._again:
            self._wake.clear()
            now = time.monotonic()
            if self._pending:
                batch, wait = dict(self._pending), pause
            else:
                batch = {key: query for key, (due, query) in self._again.items() if due <= now}
                wait = min(due for due, _ in self._again.values()) - now
            if not batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            if await self._delete(batch):
                pause = WITHDRAW_BACKOFF[0]
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            pause = min(pause * 2, WITHDRAW_BACKOFF[1])

    async def _delete(self, batch: dict[tuple[str, str], Doc]) -> bool:
        """One try at deleting ``batch``; whether MongoDB confirmed it. Those confirmed leave the journal."""
        try:
            await self._collection.bulk_write([DeleteOne(f) for f in batch.values()], ordered=False)
        except PyMongoError as exc:
            log.warning(
                "withdrawing %d %s document(s) of failed writes failed (%s); trying again", len(batch), self._name, exc
            )
            return False
        again = time.monotonic() + WITHDRAW_AGAIN
        confirmed = []
        for key, query in batch.items():
            if key in self._pending:
                del self._pending[key]
                self._again[key] = (again, query)
                confirmed.append(query)
            elif key in self._again:
                del self._again[key]
                self._done(key)
        log.info("withdrew %d %s document(s) of failed writes", len(batch), self._name)
        if confirmed and self._journal is not None:
            await self._journal.drop(self._name, confirmed)
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        batch = {**{key: query for key, (_, query) in self._again.items()}, **self._pending}
        if batch and not await self._delete(batch) and self._pending:
            log.error(
                "%d %s document(s) of failed writes could not be withdrawn: %s",
                len(self._pending),
                self._name,
                "the next start withdraws them (journal)" if self._journal else "a restart delivers them",
            )


def _without(filters: list[Doc]) -> Doc:
    """A query clause that leaves out the documents ``filters`` match (none if there are no filters)."""
    return {"$nor": filters} if filters else {}


class MongoOutbox:
    """The persistent outbox (see ``MongoStore``).

    Messages whose ids this sidecar generated (it cannot have stored them before) are stored together:
    one document per accepted batch (members in ``m``); those that wait in the store only (beyond the
    window, see ``goq.sidecar.backlog``) one per destination, with the destination and the first
    member's place in the queue. A member's delivery is recorded in the document (``x``, see
    ``_Progress``) and the document is deleted once every member is delivered or poisoned; a failed
    attempt updates its member's fields. A message with the application's idempotency id keeps a
    document of its own, as before groups: its uniqueness is the ``_id``'s.
    """

    def __init__(self, store: MongoStore) -> None:
        self._store = store
        self._adds: GroupCommitter[Doc, bool] = GroupCommitter(
            lambda docs: _insert_new(store._outbox_durable, docs), concurrency=DURABLE_WRITERS
        )
        self._updates: GroupCommitter[Any, None] = GroupCommitter(
            lambda ops: _background(store._outbox, ops), linger=BACKGROUND_LINGER
        )
        self._member_of: dict[str, tuple[str, int]] = {}
        """The group document and position of each held message that is stored in a group."""
        self._waiting: dict[str, set[str]] = {}
        """Per group document, the ids of its members not yet delivered or poisoned."""
        self._progress = _Progress(self._updates)
        self._withdrawals = _Withdrawals(store._outbox_durable, "outbox", store.journal)

    async def add(self, items: list[Outgoing]) -> list[bool]:
        """Store ``items``; per item, whether it is new. A write that fails is withdrawn (``_Withdrawals``)."""
        singles = [m for m in items if not m.generated]
        held = _grouped([m for m in items if m.generated and not m.spill])
        spilled = [group for run in _spilled_runs(items) for group in _grouped(run)]
        token = os.urandom(6).hex()
        docs = [self._single(m, token) for m in singles]
        docs += [self._group(group) for group in held] + [self._group(group, spilled=True) for group in spilled]
        try:
            stored = await self._adds.submit(docs)
            await self._repeats_durable(
                [doc["_id"] for doc, new in zip(docs[: len(singles)], stored, strict=False) if not new]
            )
        except StoreUnavailableError:
            await self._withdrawals.add(docs)
            raise
        for group, doc in zip(held, docs[len(singles) :], strict=False):
            self._hold(doc, list(enumerate(m.id for m in group)))
        answers = iter(stored[: len(singles)])  # a group's members are new: their ids were just made
        return [next(answers) if not m.generated else True for m in items]

    async def _repeats_durable(self, doc_ids: list[str]) -> None:
        """Refuse a repeated application id whose earlier send is not durable (``_not_durable``), or whose
        earlier send failed and is being withdrawn (its document is about to go)."""
        if not doc_ids:
            return
        pending = self._withdrawals.pending(doc_ids) or await self._not_durable(doc_ids)
        if pending:
            raise StoreUnavailableError(
                f"an earlier send of message id {pending[0].split('|', 1)[1]!r} is not durable yet; try again"
            )

    async def _not_durable(self, doc_ids: list[str]) -> list[str]:
        """Of documents whose insert clashed (an application's id sent again), those not majority-committed.

        A repeated id is answered "queued" on the strength of the earlier send's document; that document
        may be a write still in flight, or one that failed in appearance and sits on a primary alone, which
        an election could roll back. Only a majority-committed one lets the repeat be answered; a write in
        flight usually is within moments, so the check is tried a few times before the send is refused."""
        missing = doc_ids
        for attempt in range(REPEAT_CHECKS):
            if attempt:
                await asyncio.sleep(REPEAT_CHECK_INTERVAL)
            try:
                found = await self._store._outbox_durable.find({"_id": {"$in": missing}}, {"_id": 1}).to_list(None)
            except PyMongoError as exc:
                raise StoreUnavailableError(f"MongoDB could not check a repeated message id: {exc}") from exc
            seen = {doc["_id"] for doc in found}
            missing = [doc_id for doc_id in missing if doc_id not in seen]
            if not missing:
                break
        return missing

    def _hold(self, doc: Doc, members: list[tuple[int, str]]) -> None:
        self._waiting[doc["_id"]] = {message_id for _, message_id in members}
        for index, message_id in members:
            self._member_of[message_id] = (doc["_id"], index)

    def _single(self, m: Outgoing, token: str) -> Doc:
        """A message of the application's id; ``w``: its write's token, so that only a failed write's own
        document is withdrawn, never an earlier accepted send's of the same id."""
        return {
            "_id": self._store.key(m.id),
            "w": token,
            "h": self._store.instance,
            "d": str(m.destination),
            "c": m.created_at,
            "a": m.failed_attempts,
            "n": m.next_at,
            "b": m.body,
            "k": m.key_id,
            "s": m.signature,
            **({"sp": m.spill} if m.spill else {}),
        }

    def _group(self, group: list[Outgoing], *, spilled: bool = False) -> Doc:
        """Members in ``m``; a spilled group (all for one destination) also has the destination and the
        first member's place in the queue, as a spilled message of its own has (``d``, ``sp``), and its
        member count (``mc``), so a load can choose documents without reading their bodies."""
        doc: Doc = {
            "_id": self._store.key(f"g{os.urandom(12).hex()}"),
            "h": self._store.instance,
            "m": [
                {"i": m.id, "d": str(m.destination), "c": m.created_at, "b": m.body, "k": m.key_id, "s": m.signature}
                for m in group
            ],
        }
        if spilled:
            doc.update(d=str(group[0].destination), sp=group[0].spill, mc=len(group))
        return doc

    def forget(self, ids: list[str]) -> None:
        done: dict[str, list[str]] = {}
        singles = []
        for message_id in ids:
            member = self._member_of.pop(message_id, None)
            if member is None:
                singles.append(self._store.key(message_id))
            else:
                done.setdefault(member[0], []).append(message_id)
        operations: list[Any] = []
        for doc_id, delivered in done.items():
            waiting = self._waiting[doc_id]
            waiting.difference_update(delivered)
            if waiting:
                self._progress.add(doc_id, delivered)
            else:
                del self._waiting[doc_id]
                self._progress.finished(doc_id)
                operations.append(DeleteOne({"_id": doc_id}))
        if singles:
            operations.append(DeleteMany({"_id": {"$in": singles}}))
        self._updates.submit_nowait(operations)

    def record_failures(self, items: list[Outgoing]) -> None:
        changes: dict[str, Doc] = {}
        operations: list[Any] = []
        for m in items:
            member = self._member_of.get(m.id)
            if member is None:
                failure = {"a": m.failed_attempts, "n": m.next_at, "e": m.last_error}
                operations.append(UpdateOne({"_id": self._store.key(m.id)}, {"$set": failure}))
                continue
            doc_id, index = member
            fields = changes.setdefault(doc_id, {})
            fields.update({f"m.{index}.a": m.failed_attempts, f"m.{index}.n": m.next_at, f"m.{index}.e": m.last_error})
        operations += [UpdateOne({"_id": doc_id}, {"$set": fields}) for doc_id, fields in changes.items()]
        self._updates.submit_nowait(operations)

    async def resume_withdrawals(self, filters: list[Doc]) -> None:
        """Withdraw what a run that died left pending (see ``_Withdrawals.resume``)."""
        await self._withdrawals.resume(filters)

    async def recover(self) -> list[Outgoing]:
        """What this instance held in memory; see ``spilled_counts`` for what waits in the store only."""
        withheld = self._withdrawals.withheld()
        _, docs = await self._store.claim("outbox", [self._store.instance], waiting=False, withheld=withheld)
        return self._held(docs)

    async def adopt(self, holders: Sequence[str]) -> tuple[list[Outgoing], dict[str, int]]:
        """Take over a dead replica's records: those to hold, and per destination how many wait in the store."""
        token, docs = await self._store.claim("outbox", holders, waiting=False)
        return self._held(docs), await self._store.count_waiting({"cl": token})

    def _held(self, docs: list[Doc]) -> list[Outgoing]:
        """The undelivered messages of claimed documents, oldest first, remembered for ``forget``."""
        records = []
        for doc in docs:
            if "m" not in doc:
                records.append(_outgoing(doc["_id"].split("|", 1)[1], doc))
                continue
            done = set(doc.get("x", ()))
            members = [(index, m) for index, m in enumerate(doc["m"]) if m["i"] not in done]
            if not members:  # all delivered, but the delete was lost
                self._updates.submit_nowait([DeleteOne({"_id": doc["_id"]})])
                continue
            self._hold(doc, [(index, m["i"]) for index, m in members])
            records += [_outgoing(m["i"], m) for _, m in members]
        return sorted(records, key=lambda r: r.created_at)

    async def spilled_counts(self) -> dict[str, int]:
        return await self._store.count_waiting(_without(self._withdrawals.withheld()))

    async def load_spilled(self, destination: str, limit: int) -> list[Outgoing]:
        """Waiting messages, but none of a failed write whose withdrawal is not confirmed yet."""
        return self._held(await self._store.take_waiting(destination, limit, self._withdrawals.withheld()))

    async def close(self) -> None:
        await self._adds.drain()
        await self._withdrawals.close()
        self._progress.flush()
        await self._updates.drain()


def _outgoing(message_id: str, doc: Doc) -> Outgoing:
    return Outgoing(
        id=message_id,
        destination=Address.parse(doc["d"]),
        body=bytes(doc["b"]),
        key_id=doc["k"],
        signature=bytes(doc["s"]),
        persistent=True,
        created_at=doc["c"],
        failed_attempts=doc.get("a", 0),
        next_at=doc.get("n", 0.0),
        last_error=doc.get("e", ""),
    )


class MongoInbox:
    """The persistent inbox: one document per group of messages stored together (see ``MongoStore``).

    A group is what one ``add`` stored at once: a batch a peer delivered. Its document holds the members
    (``m``) and their de-duplication keys (``ks``, under a unique index: a key already held anywhere makes
    the insert clash, which is how a redelivery is recognised, one index entry per message as before).
    Acknowledgements are remembered per group (``x``, in the background); once every member is
    acknowledged, the group becomes a tombstone (members dropped, keys kept) that the TTL index removes
    after the dedupe window. Per message that is a fraction of an insert, an update and a TTL deletion,
    where one document per message cost MongoDB about 40 us of CPU each (bench/floor.py).
    Documents of one message each (``_id`` the owner and key, no ``ks``), written before groups, are
    still recovered, acknowledged and recognised in de-duplication as they were.
    """

    def __init__(self, store: MongoStore, dedupe_window: float) -> None:
        self._store = store
        self._window = dedupe_window
        self._adds: GroupCommitter[Doc, bool] = GroupCommitter(
            lambda docs: _insert_new(store._inbox_durable, docs), concurrency=DURABLE_WRITERS
        )
        self._updates: GroupCommitter[Any, None] = GroupCommitter(
            lambda ops: _background(store._inbox, ops), linger=BACKGROUND_LINGER
        )
        self._group_of: dict[str, str] = {}
        """The ``_id`` of the document holding each message not yet acknowledged."""
        self._waiting: dict[str, set[str]] = {}
        """Per group document, the keys of its members not yet acknowledged."""
        self._progress = _Progress(self._updates)
        self._singles = False
        """Whether documents of one message (written before groups) were found at start: then ``add``
        checks their ``_id``s too, until a restart finds none left."""
        self._withdrawals = _Withdrawals(store._inbox_durable, "inbox", store.journal)

    async def open(self) -> None:
        """The unique index on the keys of group documents (documents of one message have none)."""
        inbox = self._store._inbox
        await inbox.create_index(
            "ks", unique=True, partialFilterExpression={"ks": {"$exists": True}}, name="dedupe_keys"
        )
        with pymongo.timeout(RECOVERY_TIMEOUT):  # scans the owner's range, as the recovery's claim does
            single = await inbox.find_one({**self._store.owned(), "ks": {"$exists": False}}, {"_id": 1})
        self._singles = single is not None

    async def add(self, items: list[Incoming]) -> list[bool]:
        new: dict[str, bool] = {}
        if self._singles:  # documents of one message from before groups: their keys are their _ids
            new = await self._held_singly([m.key for m in items])
            items_left = [m for m in items if m.key not in new]
        else:
            items_left = items
        groups = _grouped(items_left)
        docs = [self._document(group) for group in groups]
        stored = await self._insert(docs)
        for group, doc, inserted in zip(groups, docs, stored, strict=True):
            if inserted:
                self._hold(doc["_id"], [m.key for m in group])
                new.update((m.key, True) for m in group)
            else:
                new.update(await self._add_clashing(group))
        return [new[m.key] for m in items]

    async def _insert(self, docs: list[Doc]) -> list[bool]:
        """Insert group documents; those of a write that fails are withdrawn (see ``_Withdrawals``)."""
        try:
            return await self._adds.submit(docs)
        except StoreUnavailableError:
            await self._withdrawals.add(docs)
            raise

    async def _held_singly(self, keys: list[str]) -> dict[str, bool]:
        """Keys stored in documents of one message: new only if unconsumed and this instance's (see
        ``_add_clashing``)."""
        query = {"_id": {"$in": [self._store.key(k) for k in keys]}}
        try:
            docs = await self._store._inbox_durable.find(query, {"st": 1, "h": 1}).to_list(None)
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB could not check for duplicates: {exc}") from exc
        ours = {"st": "r", "h": self._store.instance}
        return {d["_id"].split("|", 1)[1]: all(d.get(f) == v for f, v in ours.items()) for d in docs}

    async def _add_clashing(self, group: list[Incoming]) -> dict[str, bool]:
        """A group whose insert clashed: which members were here already, and the others stored anew.

        A member already held is a true duplicate only if it was consumed (acknowledged) or another
        instance holds it. An unconsumed member of this instance's was written by an attempt whose
        answer was lost (a write that failed ambiguously): the caller does not hold it in memory, so it
        counts as new, held in that earlier document.
        """
        new: dict[str, bool] = {}
        for attempt in range(CLASH_TRIES):  # a clash with a concurrent write of the same keys is retried
            if attempt:  # what it clashed with is not majority-committed yet: give it a moment
                await asyncio.sleep(min(CLASH_PAUSE[0] * 2 ** (attempt - 1), CLASH_PAUSE[1]))
            held, unacknowledged = await self._holders([m.key for m in group])
            if self._withdrawals.pending([doc_id for doc_id, _ in held.values()]):
                raise StoreUnavailableError("an earlier delivery of this message failed here and is being withdrawn")
            for key, (doc_id, ours) in held.items():
                new[key] = ours
                if ours:
                    # All its unacknowledged members keep the earlier document, not just those sent again.
                    self._waiting.setdefault(doc_id, unacknowledged[doc_id])
                    self._hold(doc_id, [key])
            group = [m for m in group if m.key not in held]
            if not group:
                return new
            doc = self._document(group)
            (inserted,) = await self._insert([doc])
            if inserted:
                self._hold(doc["_id"], [m.key for m in group])
                new.update((m.key, True) for m in group)
                return new
        raise StoreUnavailableError("MongoDB kept refusing a group of received messages as duplicates")

    async def _holders(self, keys: list[str]) -> tuple[dict[str, tuple[str, bool]], dict[str, set[str]]]:
        """For each key already stored: the document holding it, and whether it is an unconsumed one of
        ours; and for each such document of ours, all its members not yet acknowledged."""
        query = {"ks": {"$in": keys}, **self._store.owned()}
        try:
            docs = await self._store._inbox_durable.find(query, {"ks": 1, "st": 1, "h": 1, "x": 1}).to_list(None)
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB could not check for duplicates: {exc}") from exc
        wanted, held, unacknowledged = set(keys), {}, {}
        for doc in docs:
            live = doc.get("st") == "r" and doc.get("h") == self._store.instance
            waiting = set(doc["ks"]).difference(doc.get("x", ()))
            if live:
                unacknowledged[doc["_id"]] = waiting
            for key in wanted.intersection(doc["ks"]):
                held[key] = (doc["_id"], live and key in waiting)
        return held, unacknowledged

    def _document(self, group: list[Incoming]) -> Doc:
        store = self._store
        return {
            "_id": store.key(f"g{os.urandom(12).hex()}"),
            "h": store.instance,
            "st": "r",
            "ks": [m.key for m in group],
            "m": [
                {"k": m.key, "r": m.received_at, "dl": m.deliveries, "b": m.body, "ki": m.key_id, "s": m.signature}
                for m in group
            ],
        }

    def _hold(self, doc_id: str, keys: list[str]) -> None:
        self._waiting.setdefault(doc_id, set()).update(keys)
        for key in keys:
            self._group_of[key] = doc_id

    def acknowledge(self, keys: list[str]) -> None:
        if not keys:
            return
        done: dict[str, list[str]] = {}
        single = []
        for key in keys:
            doc_id = self._group_of.pop(key, None)
            if doc_id is None:
                single.append(self._store.key(key))  # a document of one message, from before groups
            else:
                done.setdefault(doc_id, []).append(key)
        expires = self._expiry()
        operations: list[Any] = []
        for doc_id, acked in done.items():
            waiting = self._waiting[doc_id]
            waiting.difference_update(acked)
            if waiting:
                self._progress.add(doc_id, acked)
            else:
                del self._waiting[doc_id]
                self._progress.finished(doc_id)
                operations.append(_tombstone(doc_id, expires))
        if single:
            tombstone = {"$set": {"st": "x", "t": expires}, "$unset": {"b": "", "s": ""}}
            operations.append(UpdateMany({"_id": {"$in": single}}, tombstone))
        self._updates.submit_nowait(operations)

    def _expiry(self) -> datetime.datetime:
        """When a tombstone written now may go: ``remembered_for`` the window, which outlives every copy of its
        messages the age check still accepts (the window plus a clock-skew allowance either way, see
        ``goq.freshness``); the window alone would forget a message created ahead of this sidecar's clock
        while a copy of it could still be accepted."""
        return datetime.datetime.fromtimestamp(time.time() + remembered_for(self._window), datetime.UTC)

    async def restore(self, items: list[Incoming]) -> None:
        """Stored again as a group of their own; the keys leave whatever documents held them."""
        if not items:
            return
        keys = [m.key for m in items]
        inbox = self._store._inbox_durable
        doc = self._document(items)
        try:
            await inbox.update_many({"ks": {"$in": keys}, **self._store.owned()}, {"$pull": {"ks": {"$in": keys}}})
            await inbox.delete_many({"_id": {"$in": [self._store.key(k) for k in keys]}})
            await inbox.insert_one(doc)
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB could not restore the messages: {exc}") from exc
        self._hold(doc["_id"], keys)

    async def resume_withdrawals(self, filters: list[Doc]) -> None:
        """Withdraw what a run that died left pending (see ``_Withdrawals.resume``)."""
        await self._withdrawals.resume(filters)

    async def recover(self) -> list[Incoming]:
        withheld = self._withdrawals.withheld()
        return self._held((await self._store.claim("inbox", [self._store.instance], withheld=withheld))[1])

    async def adopt(self, holders: Sequence[str]) -> list[Incoming]:
        return self._held((await self._store.claim("inbox", holders))[1])

    def _held(self, docs: list[Doc]) -> list[Incoming]:
        """The unacknowledged messages of claimed documents, oldest first, remembered for acknowledgement."""
        records = []
        for doc in docs:
            if "m" not in doc:
                records.append(_incoming(doc["_id"].split("|", 1)[1], doc, doc["k"]))
                continue
            done = set(doc.get("x", ()))
            members = [m for m in doc["m"] if m["k"] not in done]
            if not members:  # all acknowledged, but the tombstone's write was lost
                self._updates.submit_nowait([_tombstone(doc["_id"], self._expiry())])
                continue
            self._hold(doc["_id"], [m["k"] for m in members])
            records += [_incoming(m["k"], m, m["ki"]) for m in members]
        return sorted(records, key=lambda r: r.received_at)

    async def close(self) -> None:
        await self._adds.drain()
        await self._withdrawals.close()
        self._progress.flush()
        await self._updates.drain()


def _tombstone(doc_id: str, expires: datetime.datetime) -> UpdateOne:
    """A group all acknowledged: no members, its keys kept for de-duplication until the TTL index removes it."""
    return UpdateOne({"_id": doc_id}, {"$set": {"st": "x", "t": expires}, "$unset": {"m": "", "x": ""}})


R = TypeVar("R", Incoming, Outgoing)
GROUP_BYTES: Final = 8 * 1024 * 1024
"""Most payload bytes in one group document (MongoDB's limit for a document is 16 MiB)."""


def _grouped(items: list[R]) -> list[list[R]]:
    """``items`` in runs of at most ``GROUP_BYTES`` of bodies (a single larger one alone)."""
    groups: list[list[R]] = []
    size = GROUP_BYTES
    for item in items:
        if size + len(item.body) > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += len(item.body)
    return groups


def _spilled_runs(items: list[Outgoing]) -> list[list[Outgoing]]:
    """Spilled messages with generated ids, in runs per destination that a message of the same destination
    stored on its own (an application's id) ends: each run loads back in its place in the queue."""
    runs: list[list[Outgoing]] = []
    current: dict[Address, list[Outgoing]] = {}
    for item in items:
        if not item.spill:
            continue
        if not item.generated:
            current.pop(item.destination, None)
            continue
        run = current.get(item.destination)
        if run is None:
            run = current[item.destination] = []
            runs.append(run)
        run.append(item)
    return runs


def _incoming(key: str, doc: Doc, key_id: str) -> Incoming:
    body = bytes(doc["b"])
    return Incoming(
        key=key,
        message=Message.decode(body),
        body=body,
        key_id=key_id,
        signature=bytes(doc["s"]),
        received_at=doc["r"],
        deliveries=doc.get("dl", 0),
    )
