"""The poison sink of a sidecar without MongoDB: transient messages are logged, persistent ones refused."""

from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.ports.poison import PoisonSink, PoisonSinkError

REFUSED = (
    "a persistent message cannot be poisoned on this sidecar: it has no MongoDB (GOQ_MONGODB_URI) and its "
    "poison sink only logs; it stays with its sender"
)


class TransientOnlySink:
    """Wraps the ``log`` sink of a sidecar without MongoDB. Why: a persistent message over a queue's bound
    would otherwise be answered "poisoned" (its sender forgets it) with only a log line left of it; refused,
    the send is refused and a delivery is answered "retry later", so its sender keeps it."""

    def __init__(self, inner: PoisonSink) -> None:
        self.inner = inner

    async def put(self, records: list[PoisonRecord]) -> None:
        if any(r.persistent for r in records):
            raise PoisonSinkError(REFUSED)
        await self.inner.put(records)

    async def close(self) -> None:
        await self.inner.close()
