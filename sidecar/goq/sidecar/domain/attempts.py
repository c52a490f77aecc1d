"""What a failed delivery attempt does to an outgoing message: one rule for small and large messages alike."""

from goq.retry import GiveUp, RetryPolicy, after_failure
from goq.sidecar.domain import poison_reasons as poisons
from goq.sidecar.domain.records import Outgoing, PoisonRecord


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
