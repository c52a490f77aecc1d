"""Heartbeat figures and the totals the printer columns show."""

import datetime

from goq.queue_status import PodFigures, format_time, parse_time, stale_pods, totals

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)


def test_an_entry_carries_the_figures_and_the_heartbeat_time() -> None:
    assert PodFigures(True, 1, 2, 3, 4).to_entry(T0) == {
        "ready": True,
        "sendQueue": 1,
        "receiveQueue": 2,
        "delivered": 3,
        "poisoned": 4,
        "heartbeat": "2026-01-01T12:00:00Z",
        "stale": False,
    }


def test_totals_sum_every_pod_and_count_only_fresh_ready_ones_as_ready() -> None:
    pods = {
        "a": PodFigures(True, 1, 2, 3, 4).to_entry(T0),
        "b": PodFigures(False, 10, 20, 30, 40).to_entry(T0),
        "c": {**PodFigures(True, 100).to_entry(T0), "stale": True},
    }
    assert totals(pods) == {
        "ready": "1/3",
        "readyPods": 1,
        "podCount": 3,
        "sendQueue": 111,
        "receiveQueue": 22,
        "delivered": 33,
        "poisoned": 44,
    }
    assert totals({})["ready"] == "0/0"


def test_stale_pods_are_those_silent_longer_than_the_limit() -> None:
    pods = {
        "old": PodFigures(True).to_entry(T0),
        "new": PodFigures(True).to_entry(T0 + datetime.timedelta(seconds=50)),
        "marked": {**PodFigures(True).to_entry(T0), "stale": True},
        "broken": {"ready": True},
    }
    assert stale_pods(pods, T0 + datetime.timedelta(seconds=60), 30) == ["broken", "old"]


def test_times_round_trip() -> None:
    assert parse_time(format_time(T0)) == T0
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
