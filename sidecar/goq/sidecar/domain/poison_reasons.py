"""The one place a poison record is made: a constructor per way a message is given up on.

Every path (small and large sends, the send and receive queues' bounds, the application's nacks and
expired leases) builds its record here, so reason, detail, attempts, time and envelope are filled the
same way for each, as the table "Poison reasons" in docs/sidecar.md says. ``attempts`` counts failed
delivery attempts of an outbound message (an answered refusal is not a failure) and hand-overs to the
application of an inbound one.
"""

from typing import Final

from goq.retry import GiveUp
from goq.sidecar.domain.records import INBOUND, OUTBOUND, Incoming, Outgoing, PoisonRecord
from goq.sidecar.domain.refusing import poison_reason

OVERFLOW: Final = "overflow"
NACK: Final = "nack"
MAX_DELIVERIES: Final = "max-deliveries"


def send_queue_full(limit: int) -> str:
    """Why a send went over the send queue's bound: the poison detail, and the refusal under ``reject``."""
    return f"send queue full (sendQueueLimit {limit})"


def receive_queue_full(limit: int) -> str:
    """Why a delivery went over the receive queue's bound: the poison detail, and the "retry later" reason."""
    return f"receive queue full (receiveQueueLimit {limit})"


def retries_exhausted(owner: str, m: Outgoing, decision: GiveUp, last_error: str, now: float) -> PoisonRecord:
    """The retry policy gave up (``max-attempts``, ``max-age``): its words, then the last attempt's error."""
    return _outbound(owner, m, decision.reason, f"{decision.detail}; last error: {last_error}", now)


def refused(owner: str, m: Outgoing, refusal: str, now: float) -> PoisonRecord:
    """The receiver answered ``REJECTED`` with ``refusal`` (``<kind>: <detail>``): poisoned with that kind."""
    return _outbound(owner, m, poison_reason(refusal), f"refused by {m.destination}: {refusal}", now)


def send_overflow(owner: str, m: Outgoing, limit: int, now: float) -> PoisonRecord:
    """Accepted over ``sendQueueLimit`` under ``overflow: poison``: never attempted."""
    return _outbound(owner, m, OVERFLOW, send_queue_full(limit), now)


def receive_overflow(owner: str, item: Incoming, limit: int, now: float) -> PoisonRecord:
    """Delivered over ``receiveQueueLimit`` under ``overflow: poison``: never handed to the application."""
    return _inbound(owner, item, OVERFLOW, receive_queue_full(limit), now)


def nacked(owner: str, item: Incoming, reason: str, now: float) -> PoisonRecord:
    """The application nacked it without requeue; ``reason`` is the application's own words, if any."""
    detail = f"rejected by the application: {reason}" if reason else "rejected by the application"
    return _inbound(owner, item, NACK, detail, now)


def never_acknowledged(owner: str, item: Incoming, max_deliveries: int, now: float) -> PoisonRecord:
    """Its lease ran out for the ``max_deliveries``-th time (``GOQ_MAX_DELIVERIES``)."""
    detail = f"handed to the application {max_deliveries} times without an acknowledgement"
    return _inbound(owner, item, MAX_DELIVERIES, detail, now)


def _outbound(owner: str, m: Outgoing, reason: str, detail: str, now: float) -> PoisonRecord:
    return PoisonRecord(
        id=m.id,
        owner=owner,
        direction=OUTBOUND,
        peer=str(m.destination),
        reason=reason,
        detail=detail,
        attempts=m.failed_attempts,
        poisoned_at=now,
        persistent=m.persistent,
        body=m.body,
        key_id=m.key_id,
        signature=m.signature,
    )


def _inbound(owner: str, item: Incoming, reason: str, detail: str, now: float) -> PoisonRecord:
    return PoisonRecord(
        id=item.id,
        owner=owner,
        direction=INBOUND,
        peer=str(item.message.source),
        reason=reason,
        detail=detail,
        attempts=item.deliveries,
        poisoned_at=now,
        persistent=item.message.persistent,
        body=item.body,
        key_id=item.key_id,
        signature=item.signature,
    )
