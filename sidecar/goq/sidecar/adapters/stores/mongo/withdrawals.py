"""Withdrawals: the documents of writes that failed in appearance, deleted until MongoDB confirms the delete."""

import asyncio
import contextlib
import logging
import time
from typing import Final

from pymongo import DeleteOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from goq.sidecar.adapters.stores.mongo.common import Doc
from goq.sidecar.adapters.stores.withdrawal_journal import JournalError, WithdrawalJournal, filter_key

log = logging.getLogger("goq.sidecar.store")

WITHDRAW_BACKOFF: Final = (0.2, 1.0)
"""Seconds between tries of a withdrawal's delete while MongoDB fails it: the first, and the most. Short: until
it is confirmed, a crash of this sidecar delivers the refused messages after its restart, and one delete a
second costs a MongoDB that is down nothing."""
WITHDRAW_AGAIN: Final = 10.0
"""Seconds after a withdrawal's confirmed delete that it is made once more: a stalled server (or one whose
connection the client gave up on) may apply the failed insert after the first delete."""


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
