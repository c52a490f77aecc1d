"""Figures about large messages, for stats, metrics and logs: bytes so far and transfers resumed."""

from dataclasses import dataclass, field


@dataclass
class LargeProgress:
    """Totals since the sidecar started, and the bodies being received right now."""

    bytes_uploaded: int = 0
    """Payload bytes of large messages taken from the application."""
    bytes_sent: int = 0
    """Body bytes sent to peers (a resumed transfer sends only what the receiver lacked)."""
    bytes_received: int = 0
    """Body bytes received from peers."""
    transfers_resumed: int = 0
    """Transfers from a peer that continued from bytes this sidecar already held."""
    receiving: dict[str, int] = field(default_factory=dict)
    """Body bytes held so far per message being received (by inbound key)."""

    @property
    def bytes_in_progress(self) -> int:
        return sum(self.receiving.values())
