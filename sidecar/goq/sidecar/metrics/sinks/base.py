"""The metrics sink interface and what each flush hands it."""

from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from prometheus_client.registry import CollectorRegistry
from pymongo import AsyncMongoClient

from goq.sidecar.core.engine import Stats

GROUP: Final = "goq.metrics_sinks"


@dataclass(frozen=True)
class Snapshot:
    """The figures at one flush: totals and depths by name, for one identity."""

    identity: str
    at: float
    values: dict[str, float]

    @classmethod
    def of(cls, stats: Stats, at: float) -> "Snapshot":
        c = stats.counters
        values: dict[str, float] = {
            "sent": c.sent,
            "delivered": c.delivered,
            "attempts_failed": c.attempts_failed,
            "received": c.received,
            "acknowledged": c.acknowledged,
            "redelivered": c.redelivered,
            "duplicates": c.duplicates,
            "send_queue": stats.send_queue,
            "receive_queue": stats.receive_queue,
            "leased": stats.in_flight,
            **{f"poisoned_{reason}": n for reason, n in c.poisoned.items()},
            **{f"refused_{reason}": n for reason, n in c.refused.items()},
        }
        return cls(stats.identity, at, values)


@dataclass(frozen=True)
class MetricsContext:
    """What a metrics sink factory may use."""

    identity: str
    options: dict[str, Any] = field(default_factory=dict)
    registry: CollectorRegistry | None = None
    mongo: AsyncMongoClient[dict[str, Any]] | None = None
    database: str = "goq"


class MetricsSink(Protocol):
    """Receives a snapshot per flush; raises to say the flush failed (it is counted and logged)."""

    async def flush(self, snapshot: Snapshot) -> None: ...
