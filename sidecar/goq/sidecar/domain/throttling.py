"""A log that stays small under a flood: per kind of event, the first in full, then at most one line per
interval saying how many happened since, with the last one's detail.

Why: one peer batch of 200,000 forged envelopes once wrote 200,000 warning lines (34 MB of log) and
held the event loop for seconds. Counting stays exact elsewhere (``Counters``); the log only has to say
what happened and how often. Kinds must come from a small fixed set (refusal reasons, say): each keeps
a little state for the life of the process.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Kind:
    logged_at: float
    """When the last line of this kind was written (clock seconds)."""
    unlogged: int = 0
    """Events since that line, not logged yet."""
    last: str = ""
    """The last unlogged event's detail."""
    timer: asyncio.TimerHandle | None = None


class ThrottledLog:
    """Writes ``first`` for the first event of a kind, then at most one ``more`` line per kind per ``interval``.

    ``first`` is formatted with ``kind`` and ``detail``; ``more`` with ``kind``, ``count`` (events since the
    last line), ``seconds`` (since that line) and ``detail`` (the last event's). Events held back are summed
    up when the interval has passed: by the next event of the kind, or by a timer on the running event loop
    (so the tail of a flood is logged too), or by ``flush``.
    """

    def __init__(
        self,
        logger: logging.Logger,
        first: str,
        more: str,
        *,
        interval: float = 10.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.first = first
        self.more = more
        self.interval = interval
        self.level = level
        self.clock = clock
        self._kinds: dict[str, _Kind] = {}

    def event(self, kind: str, detail: str) -> None:
        """One event of ``kind``: logged now, or counted towards the kind's next summary line."""
        now = self.clock()
        state = self._kinds.get(kind)
        if state is None or (now - state.logged_at >= self.interval and not state.unlogged):
            self._kinds[kind] = _Kind(logged_at=now)
            self.logger.log(self.level, self.first.format(kind=kind, detail=detail))
            return
        state.unlogged += 1
        state.last = detail
        if now - state.logged_at >= self.interval:
            self._summarise(kind, state, now)
        elif state.timer is None:
            self._schedule(kind, state, state.logged_at + self.interval - now)

    def flush(self) -> None:
        """Write the summary of every kind whose interval has passed and that has events held back."""
        now = self.clock()
        for kind, state in self._kinds.items():
            if state.unlogged and now - state.logged_at >= self.interval:
                self._summarise(kind, state, now)

    def close(self) -> None:
        """Write every summary held back, due or not, and stop the timers: what a stopping server refused is
        said by it, not by a timer firing later into whatever runs next on the loop."""
        now = self.clock()
        for kind, state in self._kinds.items():
            if state.unlogged:
                self._summarise(kind, state, now)
            elif state.timer is not None:
                state.timer.cancel()
                state.timer = None

    def _summarise(self, kind: str, state: _Kind, now: float) -> None:
        line = self.more.format(kind=kind, count=state.unlogged, seconds=now - state.logged_at, detail=state.last)
        self.logger.log(self.level, line)
        state.logged_at, state.unlogged, state.last = now, 0, ""
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None

    def _schedule(self, kind: str, state: _Kind, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next event or ``flush`` sums up
            return
        state.timer = loop.call_later(max(delay, 0.0), self._due, kind)

    def _due(self, kind: str) -> None:
        state = self._kinds[kind]
        state.timer = None
        if state.unlogged:
            self._summarise(kind, state, max(self.clock(), state.logged_at + self.interval))
