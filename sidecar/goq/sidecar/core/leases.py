"""Leases: the application's side of the receive queue, held by ``Inbound`` (the peers' side).

The application gets messages with a lease (``take``, ``receive``); a lease that runs out hands the message out
again (so does the cancelled Receive stream that took it, at once: ``give_back``), and a message handed out
``max_deliveries`` times without an acknowledgement is poisoned. ``acknowledge`` and ``reject`` end a lease.
"""

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from goq.freshness import DEFAULT_DEDUPE_WINDOW
from goq.identity import Address
from goq.sidecar.domain import poison_reasons as poisons
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.recent_keys import RecentKeys
from goq.sidecar.domain.records import Incoming
from goq.sidecar.ports.stores import InboxStore

CONSUMED_MEMORY = 60.0
"""Seconds a consumed key is remembered in memory, well past the store's tombstone write."""


@dataclass
class InboundConfig:
    """Leases and hand-over limits; see ``SidecarSettings``. ``Inbound``'s, imported from ``inbound`` too."""

    lease: float = 30.0
    max_deliveries: int = 10
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW
    """Envelopes older than this (plus the clock-skew allowance) are refused: see ``goq.freshness``."""


class Leases:
    """The messages held for the application: ready, waiting (nack delay), leased, and given back."""

    def __init__(
        self,
        me: Address,
        stores: dict[bool, InboxStore],
        poisoner: Poisoner,
        counters: Counters,
        config: InboundConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.me = me
        self.stores = stores
        self.poisoner = poisoner
        self.counters = counters
        self.config = config
        self.clock = clock
        self.ready: deque[Incoming] = deque()
        self.waiting: list[tuple[float, int, Incoming]] = []
        self.leased: dict[str, Incoming] = {}
        self.returned: dict[str, Incoming] = {}
        """Given back by a cancelled Receive stream (``give_back``) and not handed out again: ready, yet still
        the application's to acknowledge or reject by id (it may have kept one, as ``next(iter(receive()))``
        does)."""
        self.live: set[str] = set()
        """Keys of every message held (ready, waiting, leased, or being stored by ``Inbound``, which reserves
        its arrivals' keys here): the queue's depth."""
        self.consumed = RecentKeys(CONSUMED_MEMORY, 100_000)
        """Keys acknowledged or poisoned lately: a redelivery racing the store's tombstone is still a duplicate."""
        self._order = itertools.count()
        self.arrived = asyncio.Event()
        """Replaced by a fresh event each time it is set: every waiter that held it wakes."""
        self.released = asyncio.Event()
        """Likewise, when leased messages are acknowledged, given back or expire."""

    def add(self, items: list[Incoming]) -> None:
        """Queue stored deliveries (their keys already ``live``) for the application."""
        if items:
            self.ready.extend(items)
            self._signal_arrived()

    def recover(self, items: list[Incoming]) -> None:
        """Queue messages a store recovered (received before a restart, never acknowledged)."""
        fresh = [m for m in items if m.key not in self.live]
        self.live.update(m.key for m in fresh)
        self.ready.extend(fresh)
        if fresh:
            self._signal_arrived()

    def take(self, limit: int) -> list[Incoming]:
        """Lease up to ``limit`` ready messages to the application, now."""
        self._promote_due()
        now = self.clock()
        taken: list[Incoming] = []
        skipped: list[Incoming] = []
        while self.ready and len(taken) < limit:
            item = self.ready.popleft()
            if item.id in self.leased:  # another source used the same id and it is still leased
                skipped.append(item)
                continue
            self.returned.pop(item.id, None)
            item.deliveries += 1
            if item.deliveries > 1:
                self.counters.redelivered += 1
            item.lease_until = now + self.config.lease
            self.leased[item.id] = item
            taken.append(item)
        self.ready.extendleft(reversed(skipped))
        return taken

    async def receive(self, limit: int, wait: float) -> list[Incoming]:
        """Lease up to ``limit`` messages, waiting up to ``wait`` seconds for the first to arrive."""
        deadline = time.monotonic() + wait
        while True:
            arrived = self.arrived
            taken = self.take(limit)
            remaining = deadline - time.monotonic()
            if taken or remaining <= 0:
                return taken
            if self.waiting:
                remaining = min(remaining, max(0.01, self.waiting[0][0] - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), remaining)

    def give_back(self, held: Mapping[str, int]) -> int:
        """Put back, first in line, what a cancelled Receive stream held (``held``: id -> hand-over count then;
        one handed out since is another's): it may never have been read, e.g. handed over just as the
        application acknowledged the last and left. Not a large one (``ReadPayload`` needs the lease), nor one
        at ``max_deliveries`` (left to expiry, which poisons it). How many went back."""
        back: list[Incoming] = []
        now = self.clock()
        for message_id, deliveries in held.items():
            item = self.leased.get(message_id)
            if item is None or item.deliveries != deliveries or item.message.large is not None:
                continue
            if item.deliveries >= self.config.max_deliveries:
                item.lease_until = now
                continue
            del self.leased[message_id]
            self.returned[message_id] = item
            back.append(item)
        if back:
            self.ready.extendleft(reversed(back))
            self._signal_released()
            self._signal_arrived()
        return len(back)

    def _reclaim(self, message_id: str) -> Incoming | None:
        """The message leased to the application, or given back and not handed out again (out of the queue)."""
        item = self.leased.pop(message_id, None)
        if item is None and (item := self.returned.pop(message_id, None)) is not None:
            self.ready.remove(item)
        return item

    def acknowledge(self, ids: Sequence[str]) -> list[str]:
        """Done with these; returns the ids that were not leased (unknown, or already acknowledged)."""
        unknown, done = [], []
        for message_id in ids:
            item = self._reclaim(message_id)
            if item is None:
                unknown.append(message_id)
            else:
                done.append(item)
                self.live.discard(item.key)
                self.consumed.add(item.key)
        for persistent in (True, False):
            keys = [m.key for m in done if m.message.persistent is persistent]
            if keys:
                self.stores[persistent].acknowledge(keys)
        self.counters.acknowledged += len(done)
        if done:
            self._signal_released()
        return unknown

    async def reject(self, message_id: str, *, requeue: bool, delay: float, reason: str) -> bool:
        """Give a leased message back: requeue after ``delay`` seconds, or poison it now. False if not leased."""
        item = self._reclaim(message_id)
        if item is None:
            return False
        self._signal_released()
        if requeue:
            self._requeue(item, delay)
            return True
        if await self.poisoner.poison([poisons.nacked(str(self.me), item, reason, self.clock())]):
            self._finish(item)
        else:
            self._requeue(item, 5.0)
        return True

    async def expire_leases(self) -> None:
        """Hand out again what the application held too long; poison what was handed out too often."""
        now = self.clock()
        expired = [item for item in self.leased.values() if item.lease_until <= now]
        exhausted = []
        for item in expired:
            del self.leased[item.id]
            if item.deliveries >= self.config.max_deliveries:
                exhausted.append(item)
            else:
                self._requeue(item, 0.0)
        if expired:
            self._signal_released()
        if exhausted:
            limit = self.config.max_deliveries
            records = [poisons.never_acknowledged(str(self.me), item, limit, now) for item in exhausted]
            if await self.poisoner.poison(records):
                for item in exhausted:
                    self._finish(item)
            else:
                for item in exhausted:
                    self._requeue(item, 5.0)

    def _requeue(self, item: Incoming, delay: float) -> None:
        if delay > 0:
            item.visible_at = self.clock() + delay
            heapq.heappush(self.waiting, (item.visible_at, next(self._order), item))
        else:
            self.ready.appendleft(item)
        self._signal_arrived()

    def _finish(self, item: Incoming) -> None:
        """Poisoned: no longer held here; the store keeps a tombstone so a redelivery is recognised."""
        self.live.discard(item.key)
        self.consumed.add(item.key)
        self.stores[item.message.persistent].acknowledge([item.key])

    def _signal_arrived(self) -> None:
        self.arrived.set()
        self.arrived = asyncio.Event()

    def _signal_released(self) -> None:
        self.released.set()
        self.released = asyncio.Event()

    def _promote_due(self) -> None:
        now = self.clock()
        while self.waiting and self.waiting[0][0] <= now:
            self.ready.append(heapq.heappop(self.waiting)[2])
