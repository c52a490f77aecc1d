"""The fault run's plan and verdict, without processes: the same seed draws the same faults, lengths fall
on both sides of the timeouts, and the verdict calls lost exactly what was accepted and never arrived."""

from collections import Counter

from goq.devenv.faults.applications import Ledger, Sent
from goq.devenv.faults.schedule import Fault, default_kinds, plan
from goq.devenv.faults.verdict import judge, table

KINDS = default_kinds(attempt_timeout=1.0, store_timeout=2.0)


def test_the_same_seed_draws_the_same_faults_and_keeps_the_ones_asked_for() -> None:
    must = Fault(KINDS[2], "receiver", 4.0, pause=1.0)
    first = plan(7, 5, KINDS, first=[must])
    assert first == plan(7, 5, KINDS, first=[must])
    assert len(first) == 5
    assert must in first
    assert first != plan(8, 5, KINDS, first=[must])


def test_outages_last_less_than_the_attempt_timeout_between_the_timeouts_and_longer_than_both() -> None:
    outage = next(kind for kind in KINDS if kind.name == "mongod outage")
    assert min(outage.lengths) < 1.0
    assert any(1.0 < length < 2.0 for length in outage.lengths)
    assert max(outage.lengths) > 2.0


def ledger(*sent: Sent, deliveries: dict[str, int]) -> Ledger:
    return Ledger({s.token: s for s in sent}, Counter(deliveries))


def test_an_accepted_message_neither_delivered_nor_poisoned_with_a_reason_is_lost() -> None:
    run = ledger(
        Sent("a", "unary", True, "accepted", "queued"),
        Sent("b", "stream+id", True, "accepted", "queued"),
        Sent("c", "rest", True, "accepted", "queued"),
        Sent("d", "rest+id", True, "accepted", "queued"),
        deliveries={"a": 2},
    )
    result = judge(1, "split", ["kill -9 sidecar"], run, {"b": "maxAttempts: 9 attempts", "c": ""})
    assert (result.accepted, result.delivered, result.poisoned, result.duplicates) == (4, 1, 1, 1)
    assert [entry.split()[0] for entry in result.lost] == ["c", "d"]
    assert "poisoned without a reason" in result.lost[0]
    assert not result.ok
    assert "kill -9 sidecar" in result.explain()


def test_a_refused_message_that_arrives_fails_the_run_and_unknown_or_transient_ones_do_not() -> None:
    run = ledger(
        Sent("r", "unary", True, "refused", "UNAVAILABLE: MongoDB could not make the messages durable"),
        Sent("u", "stream", True, "unknown", "stream ended"),
        Sent("t", "unary", False, "accepted", "queued"),
        deliveries={"r": 1, "u": 1},
    )
    result = judge(2, "shared", [], run, {})
    assert (result.refused, result.unknown, result.transient_accepted, result.transient_lost) == (1, 1, 1, 1)
    assert result.lost == []
    assert [entry.split()[0] for entry in result.refused_delivered] == ["r"]
    assert not result.ok
    assert "| 2 | shared |" in table([result])
