"""An example poison sink: appends ``<time> <owner> <id> <reason>: <detail>`` per poisoned message.

A sink is any object with ``async put(records)`` and ``async close()``; ``put`` returns once the
records are kept, or raises (then the sidecar keeps the messages and tries again). The factory gets a
context with ``owner`` and ``options`` (the GoQueue's ``poisonQueue`` fields other than ``type``).
"""

import asyncio
import time
from pathlib import Path
from typing import Any


class SummarySink:
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    async def put(self, records: list[Any]) -> None:
        lines = "".join(f"{_when(r.poisoned_at)} {r.owner} {r.id} {r.reason}: {r.detail}\n" for r in records)
        await asyncio.to_thread(self._append, lines)

    def _append(self, text: str) -> None:
        with self.path.open("a") as out:
            out.write(text)

    async def close(self) -> None:
        return None


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def create(context: Any) -> SummarySink:
    path = context.options.get("path")
    if not path:
        raise ValueError("the summary poison sink needs option path")
    return SummarySink(str(path))
