"""A delivered envelope is refused once older than the de-duplication window (plus the clock-skew allowance)
or created too far in the future; receivers remember keys longer than any accepted copy can arrive; and a
sender's retries stop within the window."""

from collections.abc import AsyncIterator

import pytest

from goq.api.v1 import envelope_pb2, peer_pb2
from goq.errors import ConfigError
from goq.freshness import CLOCK_SKEW, age_refusal, check_max_age, remembered_for, within_window
from goq.identity import Address
from goq.messages import LargeRef, Message
from goq.queue_spec import GoQueueSpec
from goq.retry import GiveUp, RetryPolicy, after_failure
from goq.sidecar.adapters.stores.memory import MemoryInbox
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.large.progress import LargeProgress
from goq.sidecar.large.receiving import LargeReceiver
from goq.signing import Keyring

WINDOW = 7200.0
NOW = 1_800_000_000.0
ORDERS = Address.parse("orders.shop")
BILLING = Address.parse("billing.shop")
KEYRING = Keyring({"k1": b"k" * 32}, "k1")


def created(seconds_before_now: float) -> int:
    return round((NOW - seconds_before_now) * 1000)


@pytest.mark.parametrize(
    "age",
    [0.0, 1.0, WINDOW, WINDOW + CLOCK_SKEW, -CLOCK_SKEW, -1.0],
    ids=["now", "a-second-old", "window-old", "at-the-old-edge", "at-the-future-edge", "a-second-ahead"],
)
def test_an_envelope_within_the_window_and_the_skew_allowance_is_accepted(age: float) -> None:
    assert age_refusal(created(age), NOW, WINDOW) is None


@pytest.mark.parametrize("age", [WINDOW + CLOCK_SKEW + 0.001, WINDOW + CLOCK_SKEW + 1, 30 * 86400.0])
def test_an_envelope_older_than_the_window_plus_the_skew_allowance_is_refused_as_expired(age: float) -> None:
    refusal = age_refusal(created(age), NOW, WINDOW)
    assert refusal is not None
    reason, detail = refusal
    assert reason == "expired"
    assert "de-duplication window (2h)" in detail
    assert "clock-skew allowance (5m)" in detail


def test_an_unset_creation_time_is_refused_as_expired() -> None:
    refusal = age_refusal(0, NOW, WINDOW)
    assert refusal is not None
    assert refusal[0] == "expired"


@pytest.mark.parametrize("ahead", [CLOCK_SKEW + 0.001, CLOCK_SKEW + 60, 86400.0])
def test_an_envelope_from_further_ahead_than_the_skew_allowance_is_refused_as_clock_skew(ahead: float) -> None:
    refusal = age_refusal(created(-ahead), NOW, WINDOW)
    assert refusal is not None
    reason, detail = refusal
    assert reason == "clock-skew"
    assert "at most 5m is allowed" in detail


def test_keys_are_remembered_past_the_last_moment_any_copy_is_accepted() -> None:
    # The earliest acceptance is CLOCK_SKEW before creation, the latest window + CLOCK_SKEW after it.
    first_accepted = NOW - CLOCK_SKEW
    last_accepted = NOW + WINDOW + CLOCK_SKEW
    assert age_refusal(round(NOW * 1000), first_accepted, WINDOW) is None
    assert age_refusal(round(NOW * 1000), last_accepted, WINDOW) is None
    assert first_accepted + remembered_for(WINDOW) >= last_accepted
    assert remembered_for(WINDOW) == WINDOW + 2 * CLOCK_SKEW


def test_a_max_age_longer_than_the_window_is_refused_with_both_values_and_the_limit() -> None:
    check_max_age(WINDOW, WINDOW, "spec.maxAge", "GOQ_DEDUPE_WINDOW")  # equal is allowed
    with pytest.raises(ConfigError) as refused:
        check_max_age(3 * 3600.0, WINDOW, "spec.maxAge", "GOQ_DEDUPE_WINDOW")
    message = str(refused.value)
    assert "spec.maxAge (3h) exceeds the de-duplication window (2h, GOQ_DEDUPE_WINDOW)" in message
    assert "maxAge may be at most 2h" in message


def test_a_policy_longer_than_the_window_gives_up_at_the_window_and_says_so() -> None:
    policy = RetryPolicy(max_age=3600.0, initial_backoff=1.0, max_backoff=1.0, jitter=0.0)
    assert within_window(policy, 3600.0) is policy

    cut = within_window(policy, 10.0)

    assert cut.max_age == 10.0
    decision = after_failure(cut, 1, created_at=0.0, now=9.5, rand=0.5)
    assert isinstance(decision, GiveUp)
    assert decision.reason == "max-age"
    assert "the de-duplication window GOQ_DEDUPE_WINDOW 10s" in decision.detail
    assert "maxAge 1h" in decision.detail


class KeepingSink:
    async def put(self, records: list[PoisonRecord]) -> None:
        return None


def signed(message: Message) -> envelope_pb2.SignedEnvelope:
    body = message.encode()
    key_id, signature = KEYRING.sign(body)
    return envelope_pb2.SignedEnvelope(body=body, key_id=key_id, signature=signature)


def inbound_at(now: float) -> Inbound:
    counters = Counters()
    return Inbound(
        BILLING,
        lambda: KEYRING,
        GoQueueSpec,
        {True: MemoryInbox(WINDOW), False: MemoryInbox(WINDOW)},
        Poisoner(KeepingSink(), counters),
        counters,
        InboundConfig(dedupe_window=WINDOW),
        clock=lambda: now,
    )


async def test_the_receiver_refuses_an_expired_or_future_envelope_and_counts_it() -> None:
    inbound = inbound_at(NOW)
    fresh = Message("fresh", ORDERS, BILLING, created(10), b"x")
    old = Message("old", ORDERS, BILLING, created(WINDOW + CLOCK_SKEW + 1), b"x")
    ahead = Message("ahead", ORDERS, BILLING, created(-CLOCK_SKEW - 1), b"x")

    results = await inbound.accept([signed(fresh), signed(old), signed(ahead)])

    assert [r.outcome for r in results] == [
        peer_pb2.OUTCOME_ACCEPTED,
        peer_pb2.OUTCOME_REJECTED,
        peer_pb2.OUTCOME_REJECTED,
    ]
    assert results[1].reason.startswith("expired: ")
    assert results[2].reason.startswith("clock-skew: ")
    assert inbound.counters.refused == {"expired": 1, "clock-skew": 1}
    assert [m.id for m in inbound.leases.take(10)] == ["fresh"]


async def test_the_signature_is_checked_before_the_age() -> None:
    inbound = inbound_at(NOW)
    old = signed(Message("old", ORDERS, BILLING, created(WINDOW * 2), b"x"))
    old.signature = b"\0" * len(old.signature)

    (result,) = await inbound.accept([old])

    assert result.reason.startswith("bad-signature")
    assert inbound.counters.refused == {"bad-signature": 1}


async def test_a_large_transfer_of_an_expired_envelope_is_refused_before_its_body() -> None:
    inbound = inbound_at(NOW)
    receiver = LargeReceiver(BILLING, lambda: KEYRING, GoQueueSpec, inbound, {True: None, False: None}, LargeProgress())
    large = LargeRef(size=10, mac=b"m" * 32, key_id="k1", chunk_size=1024)
    old = Message("old", ORDERS, BILLING, created(WINDOW + CLOCK_SKEW + 1), b"", large=large)

    async def parts() -> AsyncIterator[peer_pb2.TransferPart]:
        yield peer_pb2.TransferPart(begin=signed(old))

    acks = [ack async for ack in receiver.transfer(parts())]

    assert [a.result.outcome for a in acks] == [peer_pb2.OUTCOME_REJECTED]
    assert acks[0].result.reason.startswith("expired: ")
    assert inbound.counters.refused == {"expired": 1}


def test_the_transient_inbox_remembers_a_key_for_the_window_plus_twice_the_skew() -> None:
    inbox = MemoryInbox(WINDOW)
    assert inbox._keys.window == remembered_for(WINDOW)
