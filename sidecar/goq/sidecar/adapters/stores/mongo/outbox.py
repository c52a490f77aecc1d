"""The persistent outbox: messages accepted from the application, kept until delivered or poisoned."""

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from pymongo import DeleteMany, DeleteOne, UpdateOne
from pymongo.errors import PyMongoError

from goq.identity import Address
from goq.sidecar.adapters.stores.mongo.common import (
    BACKGROUND_LINGER,
    DURABLE_WRITERS,
    Doc,
    _background,
    _grouped,
    _insert_new,
    _Progress,
)
from goq.sidecar.adapters.stores.mongo.withdrawals import _Withdrawals, _without
from goq.sidecar.domain.batching import GroupCommitter
from goq.sidecar.domain.records import Outgoing
from goq.sidecar.ports.stores import StoreUnavailableError

if TYPE_CHECKING:
    from goq.sidecar.adapters.stores.mongo.store import MongoStore

log = logging.getLogger("goq.sidecar.store")

REPEAT_CHECKS: Final = 5
REPEAT_CHECK_INTERVAL: Final = 0.1
"""How often, and how far apart, a repeated application id's earlier document is looked for at the majority
level before the repeat is refused as not durable yet (see ``MongoOutbox._not_durable``)."""


class MongoOutbox:
    """The persistent outbox (see ``MongoStore``).

    Messages whose ids this sidecar generated (it cannot have stored them before) are stored together:
    one document per accepted batch (members in ``m``); those that wait in the store only (beyond the
    window, see ``goq.sidecar.core.backlog``) one per destination, with the destination and the first
    member's place in the queue. A member's delivery is recorded in the document (``x``, see
    ``_Progress``) and the document is deleted once every member is delivered or poisoned; a failed
    attempt updates its member's fields. A message with the application's idempotency id keeps a
    document of its own, as before groups: its uniqueness is the ``_id``'s.
    """

    def __init__(self, store: "MongoStore") -> None:
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
