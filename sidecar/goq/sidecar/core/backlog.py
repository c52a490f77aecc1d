"""A bounded memory window per destination: persistent messages beyond it wait in MongoDB only.

Why: a destination that is down for an hour must not make its sender hold an hour of messages in RAM.
Each destination keeps at most ``WindowConfig.messages`` messages (and ``.bytes``) in memory. Once it is
full, its new persistent messages are stored with a spill sequence and not held; as room frees up they
are loaded back, oldest first. While any of a destination's messages wait in the store, its new ones wait
there too, so the destination still gets them in the order they were sent.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from goq.identity import Address
from goq.sidecar.domain.records import Outgoing
from goq.sidecar.ports.stores import StoreUnavailableError

log = logging.getLogger("goq.sidecar.backlog")

LOAD_BATCH: Final = 1000
"""Most messages loaded back from the store in one query."""
LOAD_RETRY: Final = 1.0
"""Seconds before loading is tried again after the store failed."""


@dataclass(frozen=True)
class WindowConfig:
    """How much of one destination's send queue stays in memory (``GOQ_LANE_WINDOW``, ``_BYTES``)."""

    messages: int = 16384
    bytes: int = 32 * 1024 * 1024


class SpillStore(Protocol):
    """The part of a persistent outbox that keeps messages no lane holds."""

    async def load_spilled(self, destination: str, limit: int) -> list[Outgoing]:
        """The oldest ``limit`` stored-only messages for ``destination``, no longer marked stored-only."""
        ...

    async def spilled_counts(self) -> dict[str, int]:
        """Stored-only messages of this instance, per destination."""
        ...


Resident = Callable[[Address], tuple[int, int]]
"""Messages and bytes a destination's lane holds in memory."""


class Backlog:
    """Which of a destination's persistent messages wait in the store only, and loading them back."""

    def __init__(
        self, store: SpillStore, config: WindowConfig, resident: Resident, hold: Callable[[list[Outgoing]], None]
    ) -> None:
        self.store = store
        self.config = config
        self.resident = resident
        self.hold = hold
        self.waiting: dict[Address, int] = {}
        """Per destination: messages stored (or being stored) with a spill sequence, not held in memory."""
        self._loadable: dict[Address, int] = {}
        """Per destination: how many of the waiting messages the store has acknowledged. Only these may be
        loaded: a write is visible to reads before it is majority-acknowledged, and a message loaded
        before the write that carried it returns could overtake messages of that write held in memory.
        The group committer releases results in submission order, that is in spill-sequence order, so the
        oldest ``loadable`` of a destination are exactly the acknowledged ones."""
        self._placed: dict[Address, list[int]] = {}
        """Per destination: messages and bytes placed in memory, being stored (not yet held)."""
        self._sequence = 0
        self._loaders: dict[Address, asyncio.Task[None]] = {}
        self._closed = False

    @property
    def total(self) -> int:
        """Messages stored that wait in the store only. Those still being written are not counted: the
        send queue's bound counts them already as being admitted."""
        return sum(self._loadable.values())

    def place(self, items: list[Outgoing]) -> None:
        """Before they are stored: mark the persistent ``items`` that must wait in the store only."""
        for item in items:
            destination = item.destination
            if self.waiting.get(destination, 0) or self._room(destination) <= 0:
                self._sequence = max(self._sequence + 1, time.time_ns())
                item.spill = self._sequence
                self.waiting[destination] = self.waiting.get(destination, 0) + 1
            else:
                placed = self._placed.setdefault(destination, [0, 0])
                placed[0] += 1
                placed[1] += item.size

    def stored(self, items: list[Outgoing], fresh: list[bool]) -> list[Outgoing]:
        """After the store's answer: the items to hold in memory now; spilled new ones wait in the store."""
        hold = []
        self._unplace(items)
        for item, new in zip(items, fresh, strict=True):
            if item.spill and new:
                self._loadable[item.destination] = self._loadable.get(item.destination, 0) + 1
                self.kick(item.destination)
                continue
            if item.spill:
                # A repeated id: the message is already stored; hold it as an unspilled repeat would be.
                self._uncount(item)
            hold.append(item)
        return hold

    def held(self, items: list[Outgoing]) -> None:
        """Placed ``items`` are held in memory already (delivered while being stored): the lane counts them."""
        self._unplace(items)

    def abandon(self, items: list[Outgoing]) -> None:
        """The store refused ``items``: none of them waits there."""
        self._unplace(items)
        for item in items:
            if item.spill:
                self._uncount(item)

    def add(self, counts: Mapping[str, int]) -> None:
        """Messages found waiting in the store (after a restart, or adopted from another replica)."""
        for name, count in counts.items():
            destination = Address.parse(name)
            self.waiting[destination] = self.waiting.get(destination, 0) + count
            self._loadable[destination] = self._loadable.get(destination, 0) + count
            self.kick(destination)

    def kick(self, destination: Address) -> None:
        """Room may have freed up, or more is stored: load the destination's waiting messages if there is room."""
        if self._closed or not self._loadable.get(destination) or destination in self._loaders:
            return
        if self._room(destination) <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._load(destination), name=f"backlog {destination}")
        self._loaders[destination] = task

    async def close(self) -> None:
        self._closed = True
        loaders = list(self._loaders.values())
        for task in loaders:
            task.cancel()
        await asyncio.gather(*loaders, return_exceptions=True)

    def _room(self, destination: Address) -> int:
        count, size = self.resident(destination)
        placed_count, placed_size = self._placed.get(destination, (0, 0))
        if size + placed_size >= self.config.bytes:
            return 0
        return self.config.messages - count - placed_count

    def _unplace(self, items: list[Outgoing]) -> None:
        for item in items:
            if item.persistent and not item.spill:  # transient messages are never placed: they cannot wait
                placed = self._placed[item.destination]
                placed[0] -= 1
                placed[1] -= item.size

    async def _load(self, destination: Address) -> None:
        try:
            await self._load_while_room(destination)
        finally:
            # In the step that decided to stop: a kick after it must start a new loader, not find this one.
            self._loaders.pop(destination, None)

    async def _load_while_room(self, destination: Address) -> None:
        while not self._closed and (room := min(self._room(destination), self._loadable.get(destination, 0))) > 0:
            try:
                items = await self.store.load_spilled(str(destination), min(room, LOAD_BATCH))
            except StoreUnavailableError as exc:
                log.warning("loading waiting messages for %s failed (%s); trying again", destination, exc)
                await asyncio.sleep(LOAD_RETRY)
                continue
            if not items:
                log.warning("%d message(s) for %s should wait in the store but none were found", room, destination)
                self._loadable[destination] = 0
                return
            self.waiting[destination] = max(0, self.waiting[destination] - len(items))
            self._loadable[destination] = max(0, self._loadable[destination] - len(items))
            self.hold(items)

    def _uncount(self, item: Outgoing) -> None:
        self.waiting[item.destination] = max(0, self.waiting.get(item.destination, 0) - 1)
        item.spill = 0
