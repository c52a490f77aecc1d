"""The persistent inbox: messages received from peers, held until the application acknowledges them, then
kept as tombstones for the dedupe window."""

import asyncio
import datetime
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import pymongo
from pymongo import UpdateMany, UpdateOne
from pymongo.errors import PyMongoError

from goq.freshness import remembered_for
from goq.messages import Message
from goq.sidecar.adapters.stores.mongo.common import (
    BACKGROUND_LINGER,
    DURABLE_WRITERS,
    RECOVERY_TIMEOUT,
    Doc,
    _background,
    _grouped,
    _insert_new,
    _Progress,
)
from goq.sidecar.adapters.stores.mongo.withdrawals import _Withdrawals
from goq.sidecar.domain.batching import GroupCommitter
from goq.sidecar.domain.records import Incoming
from goq.sidecar.ports.stores import StoreUnavailableError

if TYPE_CHECKING:
    from goq.sidecar.adapters.stores.mongo.store import MongoStore

log = logging.getLogger("goq.sidecar.store")

CLASH_TRIES: Final = 5
CLASH_PAUSE: Final = (0.05, 0.4)
"""How often a received group whose insert clashed is looked at again, and the pauses between (the first, the
most; doubled each time): the document it clashed with may be a concurrent write not majority-committed yet,
invisible to the majority read until it is (see ``MongoInbox._add_clashing``)."""


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

    def __init__(self, store: "MongoStore", dedupe_window: float) -> None:
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
