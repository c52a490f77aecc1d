"""Heartbeat figures as Lease annotations, and the Lease itself."""

import datetime

from goq.queue_status import (
    HEARTBEAT_LABEL,
    PodFigures,
    beat_patch,
    format_micro_time,
    format_time,
    lease_body,
    lease_name,
    parse_time,
    read_heartbeat,
)

T0 = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
GOQUEUE = {"metadata": {"name": "orders", "uid": "u-1"}}


def test_figures_round_trip_through_annotations() -> None:
    figures = PodFigures(True, 1, 2, 3, 4)
    assert figures.to_annotations()["goq.io/delivered"] == "3"
    assert PodFigures.from_annotations(figures.to_annotations()) == figures


def test_unreadable_figures_count_as_zero_rather_than_failing() -> None:
    assert PodFigures.from_annotations({"goq.io/delivered": "lots", "goq.io/ready": "yes"}) == PodFigures(False)


def test_counters_of_earlier_sidecars_are_added_but_queues_are_not() -> None:
    assert PodFigures(True, 5, 6, 7, 8).plus_counters(PodFigures(False, 100, 100, 10, 1)) == PodFigures(
        True, 5, 6, 17, 9
    )


def test_a_lease_names_its_pod_and_identity_and_is_owned_by_the_goqueue() -> None:
    lease = lease_body("orders", "orders-7f9c", PodFigures(True, delivered=3), T0, 30, GOQUEUE)
    assert lease["metadata"]["name"] == "goq-orders-orders-7f9c"
    assert lease["metadata"]["labels"] == {HEARTBEAT_LABEL: "orders"}
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert lease["spec"]["renewTime"] == "2026-01-01T12:00:00.000000Z"
    read = read_heartbeat({**lease, "metadata": {**lease["metadata"], "uid": "l-1"}})
    assert read is not None
    assert (read.pod, read.figures.delivered, read.renewed, read.uid) == ("orders-7f9c", 3, T0, "l-1")


def test_a_beat_patches_figures_and_renew_time_only() -> None:
    patch = beat_patch(PodFigures(True, 1), T0, 30)
    assert set(patch) == {"metadata", "spec"}
    assert set(patch["metadata"]) == {"annotations"}
    assert patch["spec"]["renewTime"] == format_micro_time(T0)


def test_long_lease_names_are_shortened_to_a_valid_unique_name() -> None:
    long_pod = "p" * 253
    name = lease_name("orders", long_pod)
    assert len(name) <= 253
    assert name != lease_name("orders", long_pod[:-1] + "q")


def test_times_round_trip() -> None:
    assert parse_time(format_time(T0)) == T0
    assert parse_time(format_micro_time(T0)) == T0
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
