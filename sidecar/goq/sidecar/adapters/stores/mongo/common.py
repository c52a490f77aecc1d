"""What the store's collections share: the document type, the scans' timeout, inserts that tell new documents
from duplicates, writes in the background, the progress of group documents, and how messages are grouped."""

import asyncio
import logging
from typing import Any, Final, TypeVar

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, PyMongoError

from goq.sidecar.domain.batching import GroupCommitter
from goq.sidecar.domain.records import Incoming, Outgoing
from goq.sidecar.ports.stores import StoreUnavailableError

log = logging.getLogger("goq.sidecar.store")

Doc = dict[str, Any]
_DUPLICATE_KEY: Final = 11000
RECOVERY_TIMEOUT: Final = 300.0
"""Seconds the scans of a restart or an adoption may take (a backlog of millions), not GOQ_STORE_TIMEOUT."""
DURABLE_WRITERS: Final = 1
"""Majority writes of one kind in flight at once (results still in order; see ``GroupCommitter``). Two or
three measured worse at a fixed 1,000 msg/s (p50 7.5 ms -> 9.4-13.5): more, smaller writes, each waiting
for a journal flush, on a machine the sidecars and mongod already keep busy."""
BACKGROUND_LINGER: Final = 0.025
"""Seconds background writes wait to be grouped: deletes after delivery and acknowledgements."""
PROGRESS_DELAY: Final = 2.0
"""Seconds before the members done in an unfinished group document are written (see ``_Progress``)."""


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
