"""The in-memory store for transient messages: idempotency and de-duplication, nothing durable.

A transient message lives only in the engine's queues; if the pod dies before delivery it is lost
(documented, and counted). This store remembers ids so that a repeated send or a redelivery is still
recognised.
"""

from goq.freshness import remembered_for
from goq.sidecar.domain.recent_keys import RecentKeys
from goq.sidecar.domain.records import Incoming, Outgoing


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
