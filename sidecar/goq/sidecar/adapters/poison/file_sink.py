"""Poison sink ``file``: JSON lines in a file, rotated by size, written durably (fsync) before it answers.

Options: ``path`` (required), ``maxBytes`` (default 10 MiB), ``backups`` (rotated files kept, default 5).
"""

import asyncio
import json
import os
from pathlib import Path

from goq.sidecar.adapters.poison.records_json import to_json
from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.ports.poison import PoisonSinkError, SinkContext
from goq.sink_options import POISON, check_sink


class FilePoisonSink:
    """Appends one JSON object per poisoned message; never answers before the bytes are on disk."""

    def __init__(self, context: SinkContext) -> None:
        options = context.options
        check_sink(POISON, "file", options)  # the rules the operator's webhook applies too
        self.path = Path(str(options["path"]))
        self.max_bytes = int(options.get("maxBytes", 10 * 1024 * 1024))
        self.backups = int(options.get("backups", 5))
        self._lock = asyncio.Lock()

    async def put(self, records: list[PoisonRecord]) -> None:
        lines = "".join(json.dumps(to_json(r)) + "\n" for r in records).encode()
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, lines)
            except OSError as exc:
                raise PoisonSinkError(f"poison file {self.path}: {exc.strerror or exc}") from exc

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size + len(data) > self.max_bytes:
            self._rotate()
        with self.path.open("ab") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def _rotate(self) -> None:
        if self.backups == 0:
            self.path.unlink()
            return
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    async def close(self) -> None:
        return None


def create(context: SinkContext) -> FilePoisonSink:
    """Entry point ``file`` of ``goq.poison_sinks``."""
    return FilePoisonSink(context)
