"""Group commit: many callers' writes go to the store in one call.

While a write is in flight, new requests gather; the next write takes them all. Under load this
turns thousands of single-document round trips into a few large ones; at low load a request is
written at once, with no timer adding latency. With ``concurrency`` above one, a second write may
start while the first waits for its answer (a majority write's answer waits for the journal: a
request that arrives just then would otherwise wait for that write and then its own). Results are
released in the order requests were submitted whatever the writes' order of completion, which
per-sender message order relies on. Writes nobody waits for (acknowledgements, deletes after
delivery) may ``linger`` a few milliseconds to be written together.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    """Calls ``write`` with the items of many ``submit`` calls at once; each caller gets its own results."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[list[R]]],
        *,
        max_batch: int = 1000,
        concurrency: int = 1,
        linger: float = 0.0,
    ) -> None:
        self._write = write
        self._linger = linger
        self._max_batch = max_batch
        self._concurrency = concurrency
        self._pending: deque[tuple[list[T], asyncio.Future[list[R]]]] = deque()
        self._running: set[asyncio.Task[None]] = set()
        self._released: asyncio.Future[None] | None = None
        """Completes when the latest group's results are released: the next group's release waits for it."""

    async def submit(self, items: list[T]) -> list[R]:
        """Write ``items`` (with whatever else is waiting) and return their results, in order."""
        if not items:
            return []
        return await self.enqueue(items)

    def enqueue(self, items: list[T]) -> "asyncio.Future[list[R]]":
        """``submit`` without a coroutine of its own (for a caller per item: no task each); ``items`` are
        written even if the future is cancelled, which only stops the waiting."""
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, future))
        self._start_writers()
        return future

    def submit_nowait(self, items: list[T]) -> None:
        """Write ``items`` in the background; for writes whose loss a crash may cause (acks, deletes)."""
        if not items:
            return
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_ignore_result)
        self._pending.append((items, future))
        self._start_writers()

    @property
    def idle(self) -> bool:
        """Nothing waiting and nothing being written."""
        return not self._pending and not self._running

    async def drain(self) -> None:
        """Wait until everything submitted so far is written."""
        while not self.idle:
            await asyncio.gather(*self._running, return_exceptions=True)

    def _start_writers(self) -> None:
        while self._pending and len(self._running) < self._concurrency:
            self._running.add(asyncio.get_running_loop().create_task(self._flush()))

    async def _flush(self) -> None:
        try:
            if self._linger:  # background writes may wait a little, to be written together
                await asyncio.sleep(self._linger)
            await self._write_pending()
        finally:
            # Leave the running set in the same step that saw nothing pending: a done-callback would run
            # later, and a submission in between would find a "running" writer that never looks again.
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            self._start_writers()

    async def _write_pending(self) -> None:
        while self._pending:
            group = self._take_group()
            flat = [item for items, _ in group for item in items]
            earlier, released = self._released, asyncio.get_running_loop().create_future()
            self._released = released
            try:
                outcome: list[R] | Exception
                try:
                    outcome = await self._write(flat)
                except Exception as exc:
                    outcome = exc
                if earlier is not None:
                    await earlier  # release in submission order, whichever write finished first
                _release(group, outcome)
            finally:
                released.set_result(None)

    def _take_group(self) -> list[tuple[list[T], asyncio.Future[list[R]]]]:
        group: list[tuple[list[T], asyncio.Future[list[R]]]] = []
        count = 0
        while self._pending and (not group or count + len(self._pending[0][0]) <= self._max_batch):
            entry = self._pending.popleft()
            group.append(entry)
            count += len(entry[0])
        return group


def _release(group: list[tuple[list[T], "asyncio.Future[list[R]]"]], outcome: "list[R] | Exception") -> None:
    position = 0
    for items, future in group:
        if not future.done():
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome[position : position + len(items)])
        position += len(items)


def _ignore_result(future: "asyncio.Future[Any]") -> None:
    if not future.cancelled():
        future.exception()  # retrieved, so asyncio does not log it; the store logs its own failures
