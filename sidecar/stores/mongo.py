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

import datetime
import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Final

import pymongo
from pymongo import AsyncMongoClient, DeleteMany, UpdateMany, UpdateOne, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError

from goq.identity import Address
from goq.messages import Message
from goq.sidecar.batching import GroupCommitter
from goq.sidecar.records import Incoming, Outgoing
from goq.sidecar.stores.base import StoreUnavailableError

log = logging.getLogger("goq.sidecar.store")

Doc = dict[str, Any]
_DUPLICATE_KEY: Final = 11000
_AFTER_SEPARATOR: Final = "}"  # the character after "|": bounds an owner's _id range
RECOVERY_TIMEOUT: Final = 300.0
"""Seconds the scans of a restart or an adoption may take (a backlog of millions), not GOQ_STORE_TIMEOUT."""
DURABLE_WRITERS: Final = 1
"""Majority writes of one kind in flight at once (results still in order; see ``GroupCommitter``)."""
BACKGROUND_LINGER: Final = 0.025
"""Seconds background writes wait to be grouped: deletes after delivery and acknowledgements."""


class MongoStore:
    """An identity's persistent records, held by one sidecar instance."""

    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        database: str,
        owner: str,
        instance: str,
        *,
        dedupe_window: float,
        stale_after: float = 20.0,
    ) -> None:
        self.owner = owner
        self.instance = instance
        self.stale_after = stale_after
        db = client[database]
        majority = WriteConcern(w="majority")
        background = WriteConcern(w=1)
        self._outbox_durable: AsyncCollection[Doc] = db.get_collection("outbox", write_concern=majority)
        self._outbox: AsyncCollection[Doc] = db.get_collection("outbox", write_concern=background)
        self._inbox_durable: AsyncCollection[Doc] = db.get_collection("inbox", write_concern=majority)
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
        """Create indexes and announce this instance."""
        try:
            await self._inbox.create_index("t", expireAfterSeconds=0, sparse=True, name="tombstone_ttl")
            await self.inbox.open()
            # Only messages waiting beyond a memory window are in it, so ordinary inserts do not pay for it.
            await self._outbox.create_index(
                [("h", 1), ("d", 1), ("sp", 1)], partialFilterExpression={"sp": {"$exists": True}}, name="waiting"
            )
            await self.heartbeat()
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB not reachable: {exc}") from exc

    async def heartbeat(self) -> None:
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

    async def claim(self, collection: str, holders: Sequence[str], *, waiting: bool = True) -> tuple[str, list[Doc]]:
        """Take over the records of ``holders`` (this instance's own earlier life included).

        Returns the claim's token and the records to hold in memory: without ``waiting``, those that wait
        in the store only (outbox records with a spill sequence) are claimed but not read.
        """
        token = os.urandom(8).hex()
        coll = self._outbox if collection == "outbox" else self._inbox
        query: Doc = {**self.owned(), "h": {"$in": list(holders)}}
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
        pipeline = [{"$match": match}, {"$group": {"_id": "$d", "n": {"$sum": 1}}}]
        try:
            with pymongo.timeout(RECOVERY_TIMEOUT):
                docs = await (await self._outbox.aggregate(pipeline)).to_list(None)
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB could not count waiting messages: {exc}") from exc
        return {doc["_id"]: doc["n"] for doc in docs}

    async def take_waiting(self, destination: str, limit: int) -> list[Doc]:
        """The oldest ``limit`` waiting records for ``destination``, no longer marked waiting."""
        query = {"h": self.instance, "d": destination, "sp": {"$exists": True}, **self.owned()}
        try:
            docs = await self._outbox.find(query).sort("sp", 1).limit(limit).to_list(None)
            if docs:
                await self._outbox.update_many({"_id": {"$in": [d["_id"] for d in docs]}}, {"$unset": {"sp": ""}})
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB could not load waiting messages: {exc}") from exc
        return docs

    async def forget_instances(self, instances: Sequence[str]) -> None:
        await self._instances.delete_many({"_id": {"$in": [self.key(i) for i in instances]}})


def _inserted(error: BulkWriteError, count: int) -> list[bool]:
    """Per document, whether ``insert_many(ordered=False)`` stored it; duplicates are not errors here."""
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


class MongoOutbox:
    """The persistent outbox (see ``MongoStore``)."""

    def __init__(self, store: MongoStore) -> None:
        self._store = store
        self._adds: GroupCommitter[Doc, bool] = GroupCommitter(
            lambda docs: _insert_new(store._outbox_durable, docs), concurrency=DURABLE_WRITERS
        )
        self._updates: GroupCommitter[Any, None] = GroupCommitter(
            lambda ops: _background(store._outbox, ops), linger=BACKGROUND_LINGER
        )

    async def add(self, items: list[Outgoing]) -> list[bool]:
        store = self._store
        docs = [
            {
                "_id": store.key(m.id),
                "h": store.instance,
                "d": str(m.destination),
                "c": m.created_at,
                "a": m.failed_attempts,
                "n": m.next_at,
                "b": m.body,
                "k": m.key_id,
                "s": m.signature,
                **({"sp": m.spill} if m.spill else {}),
            }
            for m in items
        ]
        return await self._adds.submit(docs)

    def forget(self, ids: list[str]) -> None:
        if ids:
            self._updates.submit_nowait([DeleteMany({"_id": {"$in": [self._store.key(i) for i in ids]}})])

    def record_failures(self, items: list[Outgoing]) -> None:
        self._updates.submit_nowait(
            [
                UpdateOne(
                    {"_id": self._store.key(m.id)},
                    {"$set": {"a": m.failed_attempts, "n": m.next_at, "e": m.last_error}},
                )
                for m in items
            ]
        )

    async def recover(self) -> list[Outgoing]:
        """What this instance held in memory; see ``spilled_counts`` for what waits in the store only."""
        _, docs = await self._store.claim("outbox", [self._store.instance], waiting=False)
        return [_outgoing(doc) for doc in docs]

    async def adopt(self, holders: Sequence[str]) -> tuple[list[Outgoing], dict[str, int]]:
        """Take over a dead replica's records: those to hold, and per destination how many wait in the store."""
        token, docs = await self._store.claim("outbox", holders, waiting=False)
        return [_outgoing(doc) for doc in docs], await self._store.count_waiting({"cl": token})

    async def spilled_counts(self) -> dict[str, int]:
        return await self._store.count_waiting({})

    async def load_spilled(self, destination: str, limit: int) -> list[Outgoing]:
        return [_outgoing(doc) for doc in await self._store.take_waiting(destination, limit)]

    async def close(self) -> None:
        await self._adds.drain()
        await self._updates.drain()


def _outgoing(doc: Doc) -> Outgoing:
    return Outgoing(
        id=doc["_id"].split("|", 1)[1],
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
    still recovered and acknowledged as they were.
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

    async def open(self) -> None:
        """The unique index on the keys of group documents (documents of one message have none)."""
        await self._store._inbox.create_index(
            "ks", unique=True, partialFilterExpression={"ks": {"$exists": True}}, name="dedupe_keys"
        )

    async def add(self, items: list[Incoming]) -> list[bool]:
        groups = _grouped(items)
        docs = [self._document(group) for group in groups]
        stored = await self._adds.submit(docs)
        new: dict[str, bool] = {}
        for group, doc, inserted in zip(groups, docs, stored, strict=True):
            if inserted:
                self._hold(doc["_id"], [m.key for m in group])
                new.update((m.key, True) for m in group)
            else:
                new.update(await self._add_clashing(group))
        return [new[m.key] for m in items]

    async def _add_clashing(self, group: list[Incoming]) -> dict[str, bool]:
        """A group whose insert clashed: which members were here already, and the others stored anew.

        A member already held is a true duplicate only if it was consumed (acknowledged) or another
        instance holds it. An unconsumed member of this instance's was written by an attempt whose
        answer was lost (a write that failed ambiguously): the caller does not hold it in memory, so it
        counts as new, held in that earlier document.
        """
        new: dict[str, bool] = {}
        for _ in range(3):  # a clash with a concurrent write of the same keys is retried
            held, unacknowledged = await self._holders([m.key for m in group])
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
            (inserted,) = await self._adds.submit([doc])
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
                operations.append(UpdateOne({"_id": doc_id}, {"$addToSet": {"x": {"$each": acked}}}))
            else:
                del self._waiting[doc_id]
                operations.append(_tombstone(doc_id, expires))
        if single:
            tombstone = {"$set": {"st": "x", "t": expires}, "$unset": {"b": "", "s": ""}}
            operations.append(UpdateMany({"_id": {"$in": single}}, tombstone))
        self._updates.submit_nowait(operations)

    def _expiry(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(time.time() + self._window, datetime.UTC)

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

    async def recover(self) -> list[Incoming]:
        return self._held((await self._store.claim("inbox", [self._store.instance]))[1])

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
        await self._updates.drain()


def _tombstone(doc_id: str, expires: datetime.datetime) -> UpdateOne:
    """A group all acknowledged: no members, its keys kept for de-duplication until the TTL index removes it."""
    return UpdateOne({"_id": doc_id}, {"$set": {"st": "x", "t": expires}, "$unset": {"m": "", "x": ""}})


GROUP_BYTES: Final = 8 * 1024 * 1024
"""Most payload bytes in one group document (MongoDB's limit for a document is 16 MiB)."""


def _grouped(items: list[Incoming]) -> list[list[Incoming]]:
    groups: list[list[Incoming]] = [[]]
    size = 0
    for item in items:
        if groups[-1] and size + len(item.body) > GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += len(item.body)
    return groups


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
