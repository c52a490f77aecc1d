"""Where large bodies are kept while a sidecar is responsible for them: written chunk by chunk, read
from any chunk on, resumable after a break (``BodyStore.writer`` starts where the stored prefix ends).

``GridFsBodies`` (persistent) writes MongoDB GridFS's own layout (a ``<bucket>.chunks`` document per
chunk, then the ``<bucket>.files`` document once complete) so that GridFS tools and
``AsyncGridFSBucket`` read the bodies; it writes the chunks itself because GridFS's upload stream cannot
continue a file after a restart. ``SpillBodies`` (transient) keeps files in a bounded local directory.
"""

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING, WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from goq.sidecar.domain.errors import QueueFullError
from goq.sidecar.ports.stores import StoreUnavailableError

log = logging.getLogger("goq.sidecar.large")

BUCKET = "goq_large"
READ_AHEAD = 4
"""Chunks fetched per query when reading a body."""


class BodyWriter(Protocol):
    """Appends whole chunks to one body; ``offset`` is how many bytes it holds."""

    offset: int

    async def write(self, data: bytes) -> None: ...

    async def finish(self) -> None:
        """Complete and durable: the body can be read and is listed."""

    async def discard(self) -> None:
        """Drop everything written (refused, or the upload broke)."""


class BodyStore(Protocol):
    """Bodies by name (``<owner>|in|<key>`` or ``<owner>|out|<id>``)."""

    async def writer(self, name: str, chunk_size: int, *, resume: bool) -> BodyWriter:
        """A writer at the end of what is held (``resume``), or at 0 after dropping any leftovers."""
        ...

    def read(self, name: str, offset: int, chunk_size: int, end: int | None = None) -> AsyncIterator[bytes]:
        """The body from ``offset`` (a chunk boundary) up to ``end``, a chunk at a time."""
        ...

    async def delete(self, name: str) -> None: ...

    async def held(self, name: str) -> bool:
        """Whether the complete body ``name`` is stored."""
        ...

    async def complete(self, owner: str, kind: str) -> list[tuple[str, float]]:
        """Complete bodies of ``owner`` of ``kind`` (``in``/``out``) and when they were completed."""
        ...


def body_name(owner: str, kind: str, key: str) -> str:
    return f"{owner}|{kind}|{key}"


def _unavailable(exc: PyMongoError) -> StoreUnavailableError:
    return StoreUnavailableError(f"MongoDB did not store the large body: {exc}")


class GridFsBodies:
    """Persistent bodies in the ``goq_large`` GridFS bucket of the sidecar's database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.files = db.get_collection(f"{BUCKET}.files", write_concern=WriteConcern(w="majority"))
        self.chunks = db.get_collection(f"{BUCKET}.chunks", write_concern=WriteConcern(w=1))
        self.bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)

    async def open(self) -> None:
        await self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)
        await self.files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])

    async def writer(self, name: str, chunk_size: int, *, resume: bool) -> BodyWriter:
        try:
            done = await self.files.find_one({"_id": name}, {"length": 1})
            if done is not None and resume:
                return _GridFsWriter(self, name, chunk_size, int(done["length"]), finished=True)
            if not resume or done is not None:
                await self._drop(name)
                return _GridFsWriter(self, name, chunk_size, 0)
            held = await self.chunks.count_documents({"files_id": name})
        except PyMongoError as exc:
            raise _unavailable(exc) from exc
        return _GridFsWriter(self, name, chunk_size, held * chunk_size)

    async def read(self, name: str, offset: int, chunk_size: int, end: int | None = None) -> AsyncIterator[bytes]:
        # Chunk documents by index, a few at a time: a body still being written (no files document yet)
        # reads too, which is how a resumed transfer recomputes the HMAC of what it holds.
        n, stop = offset // chunk_size, None if end is None else -(-end // chunk_size)
        while stop is None or n < stop:
            upper = n + READ_AHEAD if stop is None else min(n + READ_AHEAD, stop)
            try:
                async for doc in self.chunks.find({"files_id": name, "n": {"$gte": n, "$lt": upper}}).sort("n"):
                    if doc["n"] != n:
                        raise StoreUnavailableError(f"large body {name} lacks chunk {n}")
                    yield bytes(doc["data"])
                    n += 1
            except PyMongoError as exc:
                raise _unavailable(exc) from exc
            if n < upper:  # fewer than asked for: the end of what is held
                return

    async def delete(self, name: str) -> None:
        await self._drop(name)

    async def held(self, name: str) -> bool:
        try:
            return await self.files.find_one({"_id": name}, {"_id": 1}) is not None
        except PyMongoError as exc:
            raise _unavailable(exc) from exc

    async def _drop(self, name: str) -> None:
        try:
            await self.bucket.delete(name)
        except NoFile:
            await self.chunks.delete_many({"files_id": name})

    async def complete(self, owner: str, kind: str) -> list[tuple[str, float]]:
        found = self.files.find({"filename": owner, "metadata.kind": kind}, {"uploadDate": 1})
        return [(doc["_id"], doc["uploadDate"].timestamp()) async for doc in found]


class _GridFsWriter:
    def __init__(self, store: GridFsBodies, name: str, chunk_size: int, offset: int, *, finished: bool = False):
        self.store, self.name, self.chunk_size, self.offset, self.finished = store, name, chunk_size, offset, finished

    async def write(self, data: bytes) -> None:
        try:
            await self.store.chunks.insert_one(
                {"files_id": self.name, "n": self.offset // self.chunk_size, "data": data}
            )
        except PyMongoError as exc:
            raise _unavailable(exc) from exc
        self.offset += len(data)

    async def finish(self) -> None:
        if self.finished:
            return
        owner, kind, _ = self.name.split("|", 2)
        document = {
            "_id": self.name,
            "length": self.offset,
            "chunkSize": self.chunk_size,
            "uploadDate": _now(),
            "filename": owner,
            "metadata": {"kind": kind},
        }
        try:  # majority: with the chunks before it in the oplog, the whole body is durable
            await self.store.files.replace_one({"_id": self.name}, document, upsert=True)
        except PyMongoError as exc:
            raise _unavailable(exc) from exc
        self.finished = True

    async def discard(self) -> None:
        await self.store._drop(self.name)


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)  # BSON dates are milliseconds


@dataclass
class _Spilled:
    path: Path
    size: int
    completed_at: float | None = None


class SpillBodies:
    """Transient bodies as files in ``directory``, at most ``limit`` bytes in all (beyond: queue full).

    Transient messages do not survive a restart, so the directory is emptied when the sidecar starts."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self.used = 0
        self.bodies: dict[str, _Spilled] = {}
        self.unusable: str | None = None
        """Why the directory cannot be used (a read-only file system), or None."""

    async def open(self) -> None:
        """Empty the directory; if it cannot be made, the sidecar runs without transient large messages."""
        shutil.rmtree(self.directory, ignore_errors=True)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.unusable = f"the spill area {self.directory} cannot be used ({exc.strerror})"
            log.warning(
                "%s: transient large messages are refused; set GOQ_SPILL_DIR to a writable directory "
                "(in a pod, an emptyDir volume)",
                self.unusable,
            )

    async def close(self) -> None:
        """Transient bodies do not outlive the sidecar: remove them and the directory."""
        self.bodies.clear()
        self.used = 0
        shutil.rmtree(self.directory, ignore_errors=True)

    def reserve(self, name: str, more: int) -> None:
        """Count ``more`` bytes against the bound, or refuse with ``QueueFullError``."""
        if self.used + more > self.limit:
            raise QueueFullError(
                f"the spill area for transient large messages is full ({self.used} of {self.limit} bytes, "
                "GOQ_SPILL_LIMIT_BYTES); retry later"
            )
        self.used += more
        self.bodies[name].size += more

    def _path(self, name: str) -> Path:
        return self.directory / hashlib.sha256(name.encode()).hexdigest()

    async def writer(self, name: str, chunk_size: int, *, resume: bool) -> BodyWriter:
        if self.unusable is not None:
            raise StoreUnavailableError(f"{self.unusable}; set GOQ_SPILL_DIR to a writable directory")
        spilled = self.bodies.get(name)
        if spilled is not None and spilled.completed_at is not None and resume:
            return _SpillWriter(self, name, chunk_size, spilled.size, finished=True)
        if spilled is None or not resume:
            await self.delete(name)
            spilled = self.bodies[name] = _Spilled(self._path(name), 0)
            spilled.path.write_bytes(b"")
        held = spilled.size // chunk_size * chunk_size
        if held != spilled.size:
            os.truncate(spilled.path, held)
            self.used -= spilled.size - held
            spilled.size = held
        return _SpillWriter(self, name, chunk_size, held)

    async def read(self, name: str, offset: int, chunk_size: int, end: int | None = None) -> AsyncIterator[bytes]:
        spilled = self.bodies.get(name)
        if spilled is None:
            raise StoreUnavailableError(f"large body {name} is not in the spill area")
        stop = spilled.size if end is None else min(end, spilled.size)
        with spilled.path.open("rb") as file:
            file.seek(offset)
            while offset < stop:
                data = file.read(min(chunk_size, stop - offset))  # see _SpillWriter.write: on the loop
                if not data:
                    return
                offset += len(data)
                yield data
                await asyncio.sleep(0)

    async def delete(self, name: str) -> None:
        spilled = self.bodies.pop(name, None)
        if spilled is not None:
            self.used -= spilled.size
            spilled.path.unlink(missing_ok=True)

    async def held(self, name: str) -> bool:
        spilled = self.bodies.get(name)
        return spilled is not None and spilled.completed_at is not None

    async def complete(self, owner: str, kind: str) -> list[tuple[str, float]]:
        prefix = f"{owner}|{kind}|"
        return [
            (name, s.completed_at)
            for name, s in self.bodies.items()
            if name.startswith(prefix) and s.completed_at is not None
        ]


class _SpillWriter:
    def __init__(self, store: SpillBodies, name: str, chunk_size: int, offset: int, *, finished: bool = False):
        self.store, self.name, self.chunk_size, self.offset, self.finished = store, name, chunk_size, offset, finished

    async def write(self, data: bytes) -> None:
        self.store.reserve(self.name, len(data))
        # On the event loop, not in worker threads: a chunk goes to the page cache in well under a
        # millisecond, and 1 MiB buffers handed between threads scatter over glibc's per-thread arenas
        # (the receiving sidecar's peak RSS grew by some 40 MB that way).
        with self.store.bodies[self.name].path.open("ab") as file:
            file.write(data)
        await asyncio.sleep(0)
        self.offset += len(data)

    async def finish(self) -> None:
        spilled = self.store.bodies.get(self.name)
        if spilled is not None and spilled.completed_at is None:
            spilled.completed_at = time.time()
        self.finished = True

    async def discard(self) -> None:
        await self.store.delete(self.name)
