"""The poison sink interface, and what a sink factory is given."""

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pymongo import AsyncMongoClient

from goq.errors import TemporaryError
from goq.sidecar.domain.records import PoisonRecord


class PoisonSinkError(TemporaryError):
    """The sink could not keep the records; the sidecar keeps them and tries again."""


@dataclass(frozen=True)
class SinkContext:
    """What a sink factory may use: the owner's name, the sidecar's MongoDB, the sink's own options."""

    owner: str
    options: dict[str, Any] = field(default_factory=dict)
    mongo: AsyncMongoClient[dict[str, Any]] | None = None
    database: str = "goq"


class PoisonSink(Protocol):
    """Keeps poisoned messages. ``put`` returns only when they are kept, or raises ``PoisonSinkError``."""

    async def put(self, records: list[PoisonRecord]) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class BrowsablePoisonSink(PoisonSink, Protocol):
    """A sink that can list what it keeps and hand messages back for redelivery."""

    async def browse(self, owner: str, limit: int = 100) -> list[PoisonRecord]: ...

    async def find(self, owner: str, ids: list[str]) -> list[PoisonRecord]:
        """The named messages, left in the poison queue (a redrive removes them once they are stored again)."""
        ...

    async def remove(self, owner: str, ids: list[str]) -> None:
        """Remove the named messages from the poison queue."""
        ...
