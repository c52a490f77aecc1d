"""The sidecar's running totals, read by stats, metrics and the status heartbeat."""

from dataclasses import asdict, dataclass, field


@dataclass
class Counters:
    """Totals since the sidecar started."""

    sent: int = 0
    """Accepted from the application."""
    delivered: int = 0
    """Handed to the destination's sidecar (stored there)."""
    attempts_failed: int = 0
    received: int = 0
    """Accepted from other sidecars."""
    acknowledged: int = 0
    redelivered: int = 0
    """Handed to the application again after a lease ran out or a nack."""
    duplicates: int = 0
    """Deliveries recognised as already received."""
    repeats_while_storing: int = 0
    """Deliveries of a message whose earlier delivery was still being stored: answered "retry later"."""
    poisoned: dict[str, int] = field(default_factory=dict)
    """By reason."""
    refused: dict[str, int] = field(default_factory=dict)
    """Deliveries refused from peers, by reason: per envelope (bad-signature, unknown-key, malformed,
    wrong-destination, expired, clock-skew, batch-too-large), or per request that did not decode (undecodable)."""
    lost_transient: int = 0
    """Transient messages dropped at shutdown (documented: transient messages do not survive the pod)."""

    def count_poisoned(self, reason: str, n: int = 1) -> None:
        self.poisoned[reason] = self.poisoned.get(reason, 0) + n

    def count_refused(self, reason: str, n: int = 1) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + n

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
