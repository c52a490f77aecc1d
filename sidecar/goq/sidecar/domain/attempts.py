"""What a delivery attempt's outcome does to an outgoing message: one rule for small and large messages alike.

A receiver's answer (``answered``) means delivered, refused (poisoned with the receiver's reason) or retry;
a failed attempt (``attempt_failed``, ``attempts_failed``) is retried at the time the RetryPolicy says, or
poisoned when the policy gives up. The lanes (small messages) and ``large.sending`` (large ones) both ask
here, so a change of the policy or a new poison reason reaches both.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from goq.api.v1 import peer_pb2
from goq.retry import GiveUp, RetryPolicy, after_failure
from goq.sidecar.domain import poison_reasons as poisons
from goq.sidecar.domain.records import Outgoing, PoisonRecord

DELIVERED: Final = (peer_pb2.OUTCOME_ACCEPTED, peer_pb2.OUTCOME_DUPLICATE, peer_pb2.OUTCOME_POISONED)
"""The outcomes that mean the receiver has the message: it is this sidecar's no longer."""
RETRY_LATER: Final = "peer asked to retry later"
"""The failed attempt's error when the receiver asked to retry later without saying why."""
STILL_STORING: Final = "an earlier delivery of this message is still being stored here; try again"
"""The receiver's reason for "retry later" while its write of an earlier delivery of the message is in flight
(``core.inbound``): the sender must not forget the message, which the receiver may yet hold (``core.admission``,
``core.lane``)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one answer means for its message: ``delivered``; ``refused`` (the record to poison it with); or
    neither, a failed attempt whose error is ``retry`` (see ``attempt_failed``)."""

    delivered: bool = False
    refused: PoisonRecord | None = None
    retry: str = ""


def answered(owner: str, m: Outgoing, result: peer_pb2.MessageResult, now: float) -> Verdict:
    """What the receiver's answer ``result`` for ``m`` means."""
    if result.outcome in DELIVERED:
        return Verdict(delivered=True)
    if result.outcome == peer_pb2.OUTCOME_REJECTED:
        return Verdict(refused=poisons.refused(owner, m, result.reason, now))
    return Verdict(retry=result.reason or RETRY_LATER)


def attempt_failed(
    owner: str, m: Outgoing, policy: RetryPolicy, error: str, now: float, rand: float
) -> PoisonRecord | None:
    """Count the failure on ``m`` and schedule its next attempt (``m.next_at``) per ``policy``: None; or,
    when the policy gives up (``max-attempts``, ``max-age``), the record to poison it with."""
    m.failed_attempts += 1
    m.last_error = error
    decision = after_failure(policy, m.failed_attempts, m.created_at, now, rand)
    if isinstance(decision, GiveUp):
        return poisons.retries_exhausted(owner, m, decision, error, now)
    m.next_at = decision.at
    return None


def attempts_failed(
    owner: str, items: list[Outgoing], policy: RetryPolicy, error: str, now: float, rand: Callable[[], float]
) -> tuple[list[Outgoing], list[tuple[Outgoing, PoisonRecord]]]:
    """``attempt_failed`` for each of ``items``: those to retry (at their ``next_at``), and those given up on
    with the record to poison each with."""
    retry: list[Outgoing] = []
    give_up: list[tuple[Outgoing, PoisonRecord]] = []
    for m in items:
        record = attempt_failed(owner, m, policy, error, now, rand())
        if record is None:
            retry.append(m)
        else:
            give_up.append((m, record))
    return retry, give_up
