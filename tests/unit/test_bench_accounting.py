"""The scale benchmark accounts for every accepted message by id: received, poisoned with its reason, or lost
(bench/accounting.py), and its table says so."""

from .bench_modules import load_bench

accounting = load_bench("accounting")
stats = load_bench("stats")


def test_an_accepted_message_neither_received_nor_poisoned_is_lost() -> None:
    where = accounting.account({"a": ["1", "2", "3"]}, {"b": ["1"]}, poisoned=["2"], sent=4)
    assert where["lost"] == 1
    assert where["lost_ids"] == ["3"]
    assert (where["accepted"], where["refused"], where["received"], where["poisoned"]) == (3, 1, 1, 1)


def test_a_poisoned_message_that_also_arrived_is_counted_as_both() -> None:
    where = accounting.account({"a": ["1", "2"]}, {"b": ["1", "2"]}, poisoned=["2"], sent=2)
    assert (where["received"], where["poisoned"], where["poisoned_and_received"], where["lost"]) == (2, 1, 1, 0)


def test_a_refused_send_that_arrived_is_reported_apart_from_the_accepted() -> None:
    where = accounting.account({"a": ["1"]}, {"b": ["1", "9"]}, poisoned=["9"], sent=2)
    assert (where["received"], where["received_not_accepted"], where["poisoned"], where["lost"]) == (1, 1, 0, 0)


def scale_results(**figures: object) -> dict[str, object]:
    row = {
        "identities": 2,
        "count_each": 3,
        "received": 5,
        "msgs_per_s": 100.0,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "max_ms": 3.0,
        "start_all_s": 4.0,
        "sidecar_rss_idle_mb": {"median": 50.0, "sum": 100.0},
        "sidecar_rss_after_mb": {"median": 60.0, "sum": 120.0},
        "mongod_rss_mb": {"idle": 100.0, "after": 200.0},
        **figures,
    }
    return {"scale": row}


def test_the_scale_table_shows_received_of_accepted_refused_poisoned_lost_and_failed_attempts() -> None:
    failed = {"goq_delivery_attempts_failed": 1234.0}
    row = scale_results(accepted=6, refused=0, poisoned=1, lost=0, delivery_counters=failed)
    assert "| 5 of 6 | 0 / 1 / 0 | 1,234 |" in "\n".join(stats.scale_table(row, markdown=True))


def test_the_scale_table_reads_results_from_before_the_accounting() -> None:
    table = "\n".join(stats.scale_table(scale_results(), markdown=True))
    assert "| 5 of 5 | 0 / 0 / 0 | 0 |" in table
