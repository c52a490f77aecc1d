"""The store interfaces the engine uses, and the error they raise when storage is out of reach."""

from typing import Protocol

from goq.errors import TemporaryError
from goq.sidecar.records import Incoming, Outgoing


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
