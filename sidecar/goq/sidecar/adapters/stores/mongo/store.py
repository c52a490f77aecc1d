"""``MongoStore``: one identity's records in MongoDB, held by one sidecar instance: opening, recovery at start,
heartbeats and adoption, and the messages that wait in the store only."""

import asyncio
import contextlib
import datetime
import logging
import os
import uuid
from collections.abc import Sequence
from typing import Final

import pymongo
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern

from goq.sidecar.adapters.stores.mongo.common import RECOVERY_TIMEOUT, Doc
from goq.sidecar.adapters.stores.mongo.inbox import MongoInbox
from goq.sidecar.adapters.stores.mongo.outbox import MongoOutbox
from goq.sidecar.adapters.stores.mongo.withdrawals import _without
from goq.sidecar.adapters.stores.withdrawal_journal import WithdrawalJournal
from goq.sidecar.ports.stores import Claimed, StoreUnavailableError

log = logging.getLogger("goq.sidecar.store")

_AFTER_SEPARATOR: Final = "}"  # the character after "|": bounds an owner's _id range
WAITING_STEP: Final = 8
"""Waiting documents read (by their counts) in the first round of a load; each next round reads 4x more."""
UNAUTHORIZED: Final = 13
AUTHENTICATION_FAILED: Final = 18
"""MongoDB's codes for a user without the right asked for, and a user or password it does not know."""
STORE_DOCUMENT: Final = "store"
"""The ``_id`` of the ``meta`` document that holds the database's store id."""


def why_not_opened(exc: PyMongoError, database: str) -> StoreUnavailableError:
    """The store could not be opened: a MongoDB that refused the credential is reachable, and is named so."""
    code = exc.code if isinstance(exc, OperationFailure) else None
    if code == UNAUTHORIZED:
        return StoreUnavailableError(
            f"MongoDB refused the sidecar's user on database {database!r}: the credential of GOQ_MONGODB_URI lacks "
            f"the rights GoQ needs there (readWrite on {database!r}): {exc}"
        )
    if code == AUTHENTICATION_FAILED:
        return StoreUnavailableError(
            f"MongoDB did not accept the sidecar's credential (user or password of GOQ_MONGODB_URI) for database "
            f"{database!r}: {exc}"
        )
    return StoreUnavailableError(f"MongoDB not reachable: {exc}")


class MongoStore:
    """An identity's persistent records, held by one sidecar instance (the engine's ``Custody``)."""

    refusal: str | None = None
    """Persistent messages are kept here."""
    store_id: str | None = None
    """The database's id (``meta``), the same for every sidecar that uses it; read by ``open``."""

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
        self._meta: AsyncCollection[Doc] = db.get_collection(
            "meta", write_concern=majority, read_concern=ReadConcern("majority")
        )
        self.outbox = MongoOutbox(self)
        self.inbox = MongoInbox(self, dedupe_window)

    def key(self, local: str) -> str:
        """The ``_id`` of this owner's record ``local``."""
        return f"{self.owner}|{local}"

    def owned(self) -> Doc:
        """A filter for this owner's records."""
        return {"_id": {"$gte": f"{self.owner}|", "$lt": f"{self.owner}{_AFTER_SEPARATOR}"}}

    async def open(self) -> None:
        """Read the store id, create indexes, announce this instance, and withdraw what a run that died left
        pending (its journal): before anything is recovered, which would deliver those refused messages."""
        try:
            self.store_id = await self.identify()
            await self._inbox.create_index("t", expireAfterSeconds=0, sparse=True, name="tombstone_ttl")
            await self.inbox.open()
            # Only messages waiting beyond a memory window are in it, so ordinary inserts do not pay for it.
            await self._outbox.create_index(
                [("h", 1), ("d", 1), ("sp", 1)], partialFilterExpression={"sp": {"$exists": True}}, name="waiting"
            )
            await self.announce()
        except PyMongoError as exc:
            raise why_not_opened(exc, self._outbox.database.name) from exc
        if self.journal is not None:
            left = await asyncio.to_thread(self.journal.load)
            await self.outbox.resume_withdrawals(left.get("outbox", []))
            await self.inbox.resume_withdrawals(left.get("inbox", []))

    async def identify(self) -> str:
        """The id of this database as a store: made by the first sidecar that opens it, kept for good.

        Why: two sidecars share one store exactly when they read the same id, so a receiver can take over a
        sender's stored message instead of copying it (one durable copy per message, issue 21). The
        write and the read are majority: an id a rollback could undo would be read differently by another
        sidecar. Sidecars opening a new database at once race on one ``_id``: one insert wins, the others
        find its id (an upsert that lost the race reports a duplicate key, or matches and changes nothing).
        """
        made = {"id": uuid.uuid4().hex, "at": datetime.datetime.now(datetime.UTC)}
        with contextlib.suppress(DuplicateKeyError):  # another sidecar's upsert inserted it first: its id wins
            await self._meta.update_one({"_id": STORE_DOCUMENT}, {"$setOnInsert": made}, upsert=True)
        found = await self._meta.find_one({"_id": STORE_DOCUMENT})
        if found is None or not isinstance(found.get("id"), str) or not found["id"]:
            raise StoreUnavailableError(
                f"MongoDB database {self._meta.database.name!r} holds a 'meta' document {STORE_DOCUMENT!r} "
                f"without a store id (a non-empty string 'id'): {found!r}; remove it to let GoQ write one"
            )
        return str(found["id"])

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
