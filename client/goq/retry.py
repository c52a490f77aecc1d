"""RetryPolicy and the backoff between delivery attempts: pure functions of the policy and the clock."""

import math
from dataclasses import dataclass, field
from typing import Any, Final

from goq.durations import format_duration
from goq.errors import ConfigError
from goq.specs import SpecReader

MAX_ATTEMPTS_LIMIT: Final = 1000
DAY: Final = 86400.0


@dataclass(frozen=True)
class RetryPolicy:
    """How a sidecar retries a delivery. Durations in seconds; the CRD spells them ``250ms``, ``30s``."""

    max_attempts: int = 8
    """Attempts in all, the first included; then the message is poisoned (reason ``max-attempts``)."""
    initial_backoff: float = 0.2
    """Wait before the second attempt."""
    max_backoff: float = 30.0
    """No wait is longer than this, jitter included."""
    multiplier: float = 2.0
    """Each wait is this many times the one before (before jitter)."""
    jitter: float = 0.2
    """Each wait is spread uniformly by up to this fraction either way (0 to 1)."""
    attempt_timeout: float = 5.0
    """How long one attempt may take before it counts as failed."""
    max_age: float = 3600.0
    """A message older than this is poisoned (reason ``max-age``) instead of retried; at most the
    de-duplication window (``goq.freshness``)."""
    max_age_limit: str = field(default="", compare=False)
    """Not part of the spec: what cut ``max_age`` below the spec's ``maxAge``, if anything (set by
    ``goq.freshness.within_window``), for the poison detail."""

    def __post_init__(self) -> None:
        if self.initial_backoff > self.max_backoff:
            raise ConfigError(
                f"initialBackoff ({format_duration(self.initial_backoff)}) must not exceed "
                f"maxBackoff ({format_duration(self.max_backoff)})"
            )

    @classmethod
    def from_spec(cls, spec: object, path: str = "spec") -> "RetryPolicy":
        """Validate a RetryPolicy spec (camelCase, duration strings); defaults fill what is missing."""
        r = SpecReader(spec, path)
        d = cls()
        policy = cls(
            max_attempts=r.integer("maxAttempts", d.max_attempts, 1, MAX_ATTEMPTS_LIMIT),
            initial_backoff=r.duration("initialBackoff", d.initial_backoff, 0.001, DAY),
            max_backoff=r.duration("maxBackoff", d.max_backoff, 0.001, DAY),
            multiplier=r.number("multiplier", d.multiplier, 1.0, 10.0),
            jitter=r.number("jitter", d.jitter, 0.0, 1.0),
            attempt_timeout=r.duration("attemptTimeout", d.attempt_timeout, 0.01, 3600.0),
            max_age=r.duration("maxAge", d.max_age, 1.0, 30 * DAY),
        )
        r.reject_unknown()
        return policy

    def to_spec(self) -> dict[str, Any]:
        """The CRD spelling of this policy."""
        return {
            "maxAttempts": self.max_attempts,
            "initialBackoff": format_duration(self.initial_backoff),
            "maxBackoff": format_duration(self.max_backoff),
            "multiplier": self.multiplier,
            "jitter": self.jitter,
            "attemptTimeout": format_duration(self.attempt_timeout),
            "maxAge": format_duration(self.max_age),
        }


def compute_backoff(policy: RetryPolicy, failed_attempts: int, rand: float) -> float:
    """Seconds to wait after ``failed_attempts`` (1 or more) failures before the next attempt.

    ``rand`` is uniform in [0, 1): the caller owns randomness, so tests can pin it. The wait is
    ``initial * multiplier**(failed-1)``, capped at ``max_backoff``, spread by ``±jitter``, and never
    above ``max_backoff``.
    """
    if failed_attempts < 1:
        raise ValueError(f"failed_attempts must be at least 1, got {failed_attempts}")
    exponent = min(failed_attempts - 1, _exponent_at_cap(policy))  # no overflow for absurd counts
    base = min(policy.max_backoff, policy.initial_backoff * float(policy.multiplier) ** exponent)
    spread = base * policy.jitter * (2.0 * rand - 1.0)
    return min(policy.max_backoff, max(0.0, base + spread))


def _exponent_at_cap(policy: RetryPolicy) -> int:
    """The first exponent at which the wait reaches ``max_backoff``: larger ones change nothing."""
    if policy.multiplier <= 1.0:
        return 0
    return math.ceil(math.log(policy.max_backoff / policy.initial_backoff, policy.multiplier)) + 1


@dataclass(frozen=True)
class RetryAt:
    """Try again at ``at`` (a clock reading)."""

    at: float


@dataclass(frozen=True)
class GiveUp:
    """Stop retrying: ``reason`` is ``max-attempts`` or ``max-age``."""

    reason: str
    detail: str


def after_failure(
    policy: RetryPolicy, failed_attempts: int, created_at: float, now: float, rand: float
) -> RetryAt | GiveUp:
    """What to do after a failed attempt: retry at a time, or give up with a reason."""
    if failed_attempts >= policy.max_attempts:
        return GiveUp("max-attempts", f"{failed_attempts} attempts failed (maxAttempts {policy.max_attempts})")
    at = now + compute_backoff(policy, failed_attempts, rand)
    if at - created_at > policy.max_age:
        age = format_duration(max(0.0, now - created_at))
        limit = policy.max_age_limit or f"maxAge {format_duration(policy.max_age)}"
        return GiveUp("max-age", f"next attempt would pass {limit} (age {age})")
    return RetryAt(at)
