"""What the sidecar keeps about each message while it is responsible for it."""

from dataclasses import dataclass, field
from typing import Final

from goq.identity import Address
from goq.messages import Message

OUTBOUND: Final = "outbound"
INBOUND: Final = "inbound"


@dataclass(slots=True)
class Outgoing:
    """A message this sidecar accepted from its application and has not yet handed to the destination."""

    id: str
    destination: Address
    body: bytes
    key_id: str
    signature: bytes
    persistent: bool
    created_at: float
    """Wall-clock seconds when accepted: ``maxAge`` counts from here, across restarts."""
    failed_attempts: int = 0
    next_at: float = 0.0
    """Wall-clock seconds before which it is not tried again."""
    last_error: str = ""
    spill: int = 0
    """Non-zero while it waits in the store only (see ``goq.sidecar.core.backlog``): its place in the queue."""
    generated: bool = False
    """Its id was made by this sidecar as it accepted it: no earlier send can have stored it (it may share
    a document with others; see ``MongoOutbox``)."""

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass(slots=True)
class Incoming:
    """A message delivered to this sidecar, waiting for its application or leased to it."""

    key: str
    """``<source>|<id>``: what de-duplication goes by (ids are unique per source)."""
    message: Message
    body: bytes
    key_id: str
    signature: bytes
    received_at: float
    deliveries: int = 0
    """How often it was handed to the application."""
    visible_at: float = 0.0
    """Wall-clock seconds before which it is not handed out (a nack's delay)."""
    lease_until: float = 0.0

    @property
    def id(self) -> str:
        return self.message.id


def inbound_key(source: Address, message_id: str) -> str:
    """The de-duplication key of a delivered message."""
    return f"{source}|{message_id}"


@dataclass(slots=True)
class PoisonRecord:
    """A message given up on, with why: what a poison sink keeps and can hand back."""

    id: str
    owner: str
    """``<identity>.<namespace>`` of the sidecar that gave up."""
    direction: str
    """``outbound`` (could not be delivered) or ``inbound`` (received, not consumed)."""
    peer: str
    """The destination (outbound) or the source (inbound)."""
    reason: str
    """A fixed word: max-attempts, max-age, overflow, rejected, max-deliveries, nack."""
    detail: str
    attempts: int
    poisoned_at: float
    persistent: bool
    body: bytes
    key_id: str
    signature: bytes
    extra: dict[str, str] = field(default_factory=dict)
