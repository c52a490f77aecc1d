"""A journal of pending withdrawals: the delete filters of failed writes, on local disk until MongoDB confirms.

A write the client saw fail may have landed; its send was refused, so its documents are withdrawn
(``mongo._Withdrawals``). Until MongoDB confirms the delete, the only record that they must go is in this
sidecar's memory, and a sidecar killed then (``kill -9``, a container restart) would deliver them after its
restart. So the filters are appended here, and fsynced, before the refusal is answered (the cost is on the
failure path only), dropped once the delete is confirmed, and read at the next start, before recovery
claims the outbox and inbox (``MongoStore.open``).

Where it is kept: in ``GOQ_SPILL_DIR`` (``JOURNAL_FILE``), an ``emptyDir`` in an injected pod, which
survives a restart of the sidecar container in the same pod, and the directory local sidecars reuse.
Without ``GOQ_SPILL_DIR`` it is in the system's temporary directory: that survives a restart of the process
on the same machine, not a container's restart (its temporary directory is gone with it), and cannot be
written on a read-only root file system; there a sidecar killed before its withdrawal is confirmed still
delivers those messages after its restart, as without a journal. Another replica that adopts this
instance's records (it stopped heartbeating) cannot read this journal either: see ``docs/sidecar.md``.

Format: one JSON object per line, ``{"c": <collection>, "f": <delete filter>}``. Entries are appended and
fsynced; dropping entries rewrites the file atomically (a temporary file, fsync, rename, fsync of the
directory). A crash in the middle of an append leaves a torn last line: it is ignored when the journal is
read (its refusal was never answered), and the file is rewritten without it, so that the next append does
not continue it.
"""

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Final

from goq.errors import TemporaryError
from goq.sidecar.domain.batching import GroupCommitter

log = logging.getLogger("goq.sidecar.store")

Doc = dict[str, Any]
JOURNAL_FILE: Final = "withdrawals.jsonl"
"""The journal's name in the sidecar's local directory (``GOQ_SPILL_DIR``)."""


class JournalError(TemporaryError):
    """The journal could not be written (the disk full, the directory read-only)."""


def filter_key(query: Doc) -> tuple[str, str]:
    """What tells two withdrawals apart: the document's ``_id`` and the failed write's token (``w``), if any."""
    return str(query["_id"]), str(query.get("w", ""))


class WithdrawalJournal:
    """The pending withdrawals of one sidecar instance, per collection, in the file ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[tuple[str, tuple[str, str]], Doc] = {}
        """Per collection and filter key, the filter: what the file holds once writes in flight are done."""
        self._file = asyncio.Lock()
        """Held by each write of the file: an append must not go to a file a rewrite is replacing."""
        self._appends: GroupCommitter[tuple[str, Doc], None] = GroupCommitter(self._append)

    def load(self) -> dict[str, list[Doc]]:
        """The filters the last run left pending, per collection; the file is rewritten without a torn line.

        Called once at start, before anything is recorded. An unreadable file is logged and treated as empty."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.error("the journal of pending withdrawals %s cannot be read (%s): none resumed", self.path, exc)
            return {}
        lines = data.split(b"\n")
        torn = lines.pop()  # after the last newline: empty, or an append a crash cut short
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                self._entries[(entry["c"], filter_key(entry["f"]))] = entry["f"]
            except (ValueError, KeyError, TypeError) as exc:
                log.error("journal of pending withdrawals %s, line %d unreadable (%s): skipped", self.path, number, exc)
        if torn:
            log.warning("journal of pending withdrawals %s: a torn last line (%d bytes) ignored", self.path, len(torn))
        if torn or len(self._entries) != len(lines):
            try:
                _rewrite(self.path, self._lines(self._entries))
            except OSError as exc:
                log.error("the journal of pending withdrawals %s cannot be rewritten (%s)", self.path, exc)
        pending: dict[str, list[Doc]] = {}
        for (collection, _), query in self._entries.items():
            pending.setdefault(collection, []).append(query)
        return pending

    async def record(self, collection: str, filters: list[Doc]) -> None:
        """Remember ``filters`` durably: returns once they are on disk (``JournalError`` if they cannot be)."""
        if not filters:
            return
        for query in filters:
            self._entries[(collection, filter_key(query))] = query
        await self._appends.submit([(collection, query) for query in filters])

    async def drop(self, collection: str, filters: list[Doc]) -> None:
        """Forget ``filters`` (their deletes are confirmed); the file is rewritten without them."""
        gone = [(collection, filter_key(query)) for query in filters]
        if not any(key in self._entries for key in gone):
            return
        for key in gone:
            self._entries.pop(key, None)
        async with self._file:
            remaining = self._lines(self._entries)  # taken under the lock: nothing appended meanwhile is lost
            try:
                await asyncio.to_thread(_rewrite, self.path, remaining)
            except OSError as exc:
                # Harmless: the next start deletes them again, and their filters match only what they wrote.
                log.warning("the journal of pending withdrawals %s cannot be rewritten (%s)", self.path, exc)

    async def _append(self, items: list[tuple[str, Doc]]) -> list[None]:
        async with self._file:
            # Those dropped meanwhile (their delete confirmed before this append) are not written again.
            still: dict[tuple[str, tuple[str, str]], Doc] = {}
            for collection, query in items:
                if (key := (collection, filter_key(query))) in self._entries:
                    still[key] = query
            try:
                await asyncio.to_thread(_append, self.path, self._lines(still))
            except OSError as exc:
                raise JournalError(
                    f"the journal of pending withdrawals {self.path} cannot be written ({exc.strerror or exc})"
                ) from exc
        return [None] * len(items)

    @staticmethod
    def _lines(entries: dict[tuple[str, tuple[str, str]], Doc]) -> bytes:
        return b"".join(json.dumps({"c": c, "f": f}).encode() + b"\n" for (c, _), f in entries.items())


def _append(path: Path, data: bytes) -> None:
    if not data:
        return
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    if created:  # the file's name is durable only once its directory is
        _fsync_directory(path.parent)


def _rewrite(path: Path, data: bytes) -> None:
    """Replace the file by ``data`` atomically: a crash leaves either the old journal or the new one."""
    if not data:
        path.unlink(missing_ok=True)
        _fsync_directory(path.parent)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    with temporary.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    temporary.replace(path)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
