"""Stand-ins when no MongoDB is configured: persistent messages are refused with the reason."""

from goq.sidecar.domain.records import Incoming, Outgoing
from goq.sidecar.ports.stores import Claimed, StoreUnavailableError

REASON = "persistent messages need MongoDB and this sidecar has none (set GOQ_MONGODB_URI)"


class NoOutbox:
    """Refuses persistent sends (503 / UNAVAILABLE): nothing is accepted that could not be kept."""

    async def add(self, items: list[Outgoing]) -> list[bool]:
        raise StoreUnavailableError(REASON)

    def forget(self, ids: list[str]) -> None:
        return None

    def record_failures(self, items: list[Outgoing]) -> None:
        return None

    async def recover(self) -> list[Outgoing]:
        return []

    async def close(self) -> None:
        return None


class NoInbox:
    """Answers persistent deliveries with RETRY_LATER, so the sender keeps them."""

    async def add(self, items: list[Incoming]) -> list[bool]:
        raise StoreUnavailableError(REASON)

    def acknowledge(self, keys: list[str]) -> None:
        return None

    async def restore(self, items: list[Incoming]) -> None:
        raise StoreUnavailableError(REASON)

    async def recover(self) -> list[Incoming]:
        return []

    async def close(self) -> None:
        return None


class NoCustody:
    """Holds no records: nothing to resume at start, nothing to adopt from stopped replicas."""

    refusal: str | None = REASON
    store_id: str | None = None

    async def resume(self) -> Claimed:
        return Claimed()

    async def heartbeat(self) -> Claimed:
        return Claimed()
