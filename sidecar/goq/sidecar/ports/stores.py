"""The store interfaces the engine uses, and the error they raise when storage is out of reach."""

from dataclasses import dataclass, field
from typing import Protocol

from goq.errors import TemporaryError
from goq.sidecar.domain.records import Incoming, Outgoing


class StoreUnavailableError(TemporaryError):
    """The store could not make a write durable (or answer) in time; nothing was accepted."""


class OutboxStore(Protocol):
    """Messages accepted from the application and not yet delivered."""

    async def add(self, items: list[Outgoing]) -> list[bool]:
        """Keep ``items`` (durably, before returning); per item True if new, False if its id was there."""
        ...

    def forget(self, ids: list[str]) -> None:
        """Drop delivered or poisoned messages (in the background: a lost drop only redelivers)."""
        ...

    def record_failures(self, items: list[Outgoing]) -> None:
        """Remember attempts, next attempt time and last error (in the background)."""
        ...

    async def recover(self) -> list[Outgoing]:
        """Everything this sidecar should still deliver: its own, and what a dead replica left."""
        ...

    async def close(self) -> None:
        """Finish background writes."""
        ...


class InboxStore(Protocol):
    """Messages delivered to this sidecar and not yet acknowledged by its application."""

    async def add(self, items: list[Incoming]) -> list[bool]:
        """Keep ``items`` durably; per item True if new, False if already received (a duplicate)."""
        ...

    def acknowledge(self, keys: list[str]) -> None:
        """Mark consumed; remembered for de-duplication for the dedupe window (in the background)."""
        ...

    async def restore(self, items: list[Incoming]) -> None:
        """Keep ``items`` durably again even if they were consumed before (a redrive from the poison queue)."""
        ...

    async def recover(self) -> list[Incoming]:
        """Everything received and not yet acknowledged."""
        ...

    async def close(self) -> None:
        """Finish background writes."""
        ...


@dataclass
class Claimed:
    """Records one instance took over: at its start its own, at a heartbeat those of stopped replicas."""

    outgoing: list[Outgoing] = field(default_factory=list)
    """Messages to deliver, held in memory from now on."""
    incoming: list[Incoming] = field(default_factory=list)
    """Messages received and not yet acknowledged, for the application to receive."""
    waiting: dict[str, int] = field(default_factory=dict)
    """Per destination, how many more messages wait in the store only (not in ``outgoing``): the backlog loads
    them as lanes have room."""
    holders: list[str] = field(default_factory=list)
    """The instances whose records these were (none: nothing was claimed)."""


class Custody(Protocol):
    """The lifecycle of the persistent records one sidecar instance holds for its identity.

    Why a port of its own: the outbox and inbox serve one message at a time; which records an instance holds
    (after a restart, after a replica of its identity stopped) is decided for the store as a whole. The
    engine asks through this, never knowing which store answers."""

    refusal: str | None
    """Why persistent messages cannot be kept (no store to keep them), or None when they can."""

    store_id: str | None
    """The id of the store these records are kept in, known once ``resume`` returned: two sidecars that read
    the same id share one store (one copy of a message can serve both). None: no store, or not opened yet."""

    async def resume(self) -> Claimed:
        """Open the store and claim what this instance held before it started."""
        ...

    async def heartbeat(self) -> Claimed:
        """Say this instance is alive, and claim what replicas of its identity that stopped saying so held."""
        ...
