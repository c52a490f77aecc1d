"""The in-memory store for transient messages: idempotency and de-duplication, nothing durable.

A transient message lives only in the engine's queues; if the pod dies before delivery it is lost
(documented, and counted). This store remembers ids so that a repeated send or a redelivery is still
recognised.
"""

import time
from collections import OrderedDict
from typing import Final

from goq.freshness import remembered_for
from goq.sidecar.records import Incoming, Outgoing

EXPIRY_INTERVAL: Final = 0.5
"""Seconds between sweeps of expired keys: a key may be remembered this much longer than its window."""


class RecentKeys:
    """Keys remembered for ``window`` seconds, and at most ``limit`` of them (oldest dropped first)."""

    def __init__(self, window: float, limit: int) -> None:
        self.window = window
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._next_expiry = 0.0

    def add(self, key: str) -> bool:
        """Remember ``key``; False if it was already remembered."""
        self._expire()
        if key in self._seen:
            return False
        self._seen[key] = time.monotonic() + self.window
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return True

    def discard(self, key: str) -> None:
        self._seen.pop(key, None)

    def __contains__(self, key: str) -> bool:
        self._expire()
        return key in self._seen

    def _expire(self) -> None:
        now = time.monotonic()
        if now < self._next_expiry:  # at most every EXPIRY_INTERVAL: this runs on every lookup
            return
        self._next_expiry = now + EXPIRY_INTERVAL
        while self._seen:
            until = next(iter(self._seen.values()))
            if until > now:
                break
            self._seen.popitem(last=False)


class MemoryOutbox:
    """Idempotency of transient sends: an id sent again while pending is not sent twice."""

    def __init__(self) -> None:
        self._pending: set[str] = set()

    async def add(self, items: list[Outgoing]) -> list[bool]:
        results = []
        for item in items:
            new = item.id not in self._pending
            self._pending.add(item.id)
            results.append(new)
        return results

    def forget(self, ids: list[str]) -> None:
        self._pending.difference_update(ids)

    def record_failures(self, items: list[Outgoing]) -> None:
        return None

    async def recover(self) -> list[Outgoing]:
        return []

    async def close(self) -> None:
        return None


class MemoryInbox:
    """De-duplication of transient deliveries (bounded in size).

    A key is remembered ``remembered_for(dedupe_window)`` from its arrival, not just the window: that covers
    every later copy the receiver's age check still accepts, a clock-skew allowance either way
    (``goq.freshness``)."""

    def __init__(self, dedupe_window: float, limit: int = 100_000) -> None:
        self._keys = RecentKeys(remembered_for(dedupe_window), limit)

    async def add(self, items: list[Incoming]) -> list[bool]:
        return [self._keys.add(item.key) for item in items]

    def acknowledge(self, keys: list[str]) -> None:
        return None  # the key stays remembered until the window passes

    async def restore(self, items: list[Incoming]) -> None:
        for item in items:
            self._keys.discard(item.key)
            self._keys.add(item.key)

    async def recover(self) -> list[Incoming]:
        return []

    async def close(self) -> None:
        return None
