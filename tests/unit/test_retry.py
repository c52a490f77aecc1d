"""Backoff follows the RetryPolicy exactly, jitter bounds included; giving up names its reason."""

import pytest

from goq.errors import ConfigError
from goq.retry import GiveUp, RetryAt, RetryPolicy, after_failure, compute_backoff

PATIENT = RetryPolicy(
    max_attempts=8, initial_backoff=0.2, max_backoff=30, multiplier=2, jitter=0.2, attempt_timeout=5, max_age=3600
)


def test_without_jitter_waits_grow_by_the_multiplier_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=0.2, max_backoff=3, multiplier=2, jitter=0)
    waits = [compute_backoff(policy, n, rand=0.0) for n in range(1, 8)]
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0])


@pytest.mark.parametrize("failed", [1, 2, 3, 4])
def test_jitter_spreads_each_wait_within_its_bounds(failed: int) -> None:
    base = 0.2 * 2 ** (failed - 1)
    low = compute_backoff(PATIENT, failed, rand=0.0)
    middle = compute_backoff(PATIENT, failed, rand=0.5)
    high = compute_backoff(PATIENT, failed, rand=0.999999)
    assert low == pytest.approx(base * 0.8)
    assert middle == pytest.approx(base)
    assert high == pytest.approx(base * 1.2, rel=1e-5)


def test_jitter_never_pushes_a_wait_past_max_backoff() -> None:
    assert compute_backoff(PATIENT, 20, rand=0.999) == 30
    assert compute_backoff(PATIENT, 20, rand=0.0) == pytest.approx(24)


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert compute_backoff(PATIENT, 10**9, rand=0.5) == 30


def test_after_the_last_attempt_the_message_is_given_up_for_attempts() -> None:
    decision = after_failure(PATIENT, failed_attempts=8, created_at=0, now=10, rand=0.5)
    assert decision == GiveUp("max-attempts", "8 attempts failed (maxAttempts 8)")


def test_a_retry_that_would_pass_max_age_is_given_up_for_age() -> None:
    policy = RetryPolicy(max_age=10, initial_backoff=4, max_backoff=4, jitter=0)
    assert after_failure(policy, 1, created_at=0, now=5, rand=0.5) == RetryAt(9)
    decision = after_failure(policy, 2, created_at=0, now=7, rand=0.5)
    assert isinstance(decision, GiveUp)
    assert decision.reason == "max-age"
    assert "maxAge 10s" in decision.detail


def test_a_fake_clock_sees_the_whole_schedule() -> None:
    now, schedule = 0.0, []
    for failed in range(1, 9):
        decision = after_failure(PATIENT, failed, created_at=0, now=now, rand=0.5)
        if isinstance(decision, GiveUp):
            break
        schedule.append(round(decision.at - now, 3))
        now = decision.at
    assert schedule == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8]


def test_spec_round_trips_through_the_crd_spelling() -> None:
    spec = {
        "maxAttempts": 8,
        "initialBackoff": "200ms",
        "maxBackoff": "30s",
        "multiplier": 2.0,
        "jitter": 0.2,
        "attemptTimeout": "5s",
        "maxAge": "1h",
    }
    assert RetryPolicy.from_spec(spec) == PATIENT
    assert PATIENT.to_spec() == spec


def test_empty_spec_means_the_defaults() -> None:
    assert RetryPolicy.from_spec({}) == RetryPolicy()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"maxAttempts": 0}, r"spec.maxAttempts must be an integer from 1 to 1000, got 0"),
        ({"maxAttempts": "3"}, r"spec.maxAttempts must be an integer"),
        ({"initialBackoff": "fast"}, r"spec.initialBackoff 'fast' is not a duration"),
        ({"initialBackoff": "1m", "maxBackoff": "30s"}, r"initialBackoff \(1m\) must not exceed maxBackoff \(30s\)"),
        ({"multiplier": 0.5}, r"spec.multiplier must be a number from 1 to 10"),
        ({"jitter": 2}, r"spec.jitter must be a number from 0 to 1"),
        ({"maxAge": "0s"}, r"spec.maxAge must be from 1s to 30d|spec.maxAge must be from 1s to"),
        ({"maxAttemps": 3}, r"spec has unknown field\(s\) maxAttemps; known: "),
        ("fast", r"spec must be an object, got str"),
    ],
)
def test_bad_specs_are_refused_with_the_field_and_what_is_allowed(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy.from_spec(spec)
