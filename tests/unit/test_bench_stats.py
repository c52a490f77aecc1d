"""The benchmark's pure figures: percentiles, summaries of repeated runs and the tables (bench/stats.py)."""

import pytest

from .bench_modules import load_bench

stats = load_bench("stats")
percentile, latency_summary, spread = stats.percentile, stats.latency_summary, stats.spread
throughput_row, text_table, markdown_tables = stats.throughput_row, stats.text_table, stats.markdown_tables
report = load_bench("report")


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0, 1.0), (50, 51.0), (90, 91.0), (99, 100.0), (99.9, 100.0), (100, 100.0)],
)
def test_nearest_rank_percentile_of_1_to_100(p: float, expected: float) -> None:
    values = [float(x) for x in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, p) == expected


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 99) == 0.0
    assert latency_summary([])["max_ms"] == 0.0


def test_latency_summary_keys_and_max() -> None:
    summary = latency_summary([1.0] * 999 + [50.0])
    assert summary == {"p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0, "p999_ms": 50.0, "max_ms": 50.0}


def test_spread_and_throughput_row_take_median_min_max() -> None:
    runs = [{"msgs_per_s": r, "mb_per_s": r / 1000} for r in (9000.0, 12000.0, 10000.0)]
    assert spread([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert throughput_row(runs) == {"msgs_per_s": 10000.0, "min": 9000.0, "max": 12000.0, "mb_per_s": 10.0}


RESULTS = {
    "systems": {
        "NATS JetStream": {
            "group": "peer",
            "throughput": {"1024": [{"msgs_per_s": 19000.0, "mb_per_s": 19.5}]},
            "latency": {"p50_ms": 0.3, "p90_ms": 0.8, "p99_ms": 3.3, "p999_ms": 10.5, "max_ms": 19.1},
            "rss_idle_mb": {"nats-server": 12.0},
            "rss_after_mb": {"nats-server": 24.0},
            "cpu_s_per_10k": {"nats-server": 0.3},
        },
        "GoQ persistent, gRPC stream": {
            "group": "goq",
            "throughput": {
                "1024": [{"msgs_per_s": 8000.0, "mb_per_s": 8.2}],
                "65536": [{"msgs_per_s": 500.0, "mb_per_s": 32.8}],
            },
            "latency": None,
            "rss_idle_mb": {},
            "rss_after_mb": {},
            "cpu_s_per_10k": {},
        },
        "gRPC hop (bare)": {
            "group": "peer",
            "throughput": {},
            "latency": None,
            "rss_idle_mb": {"hop": 38.0},
            "rss_after_mb": {},
            "cpu_s_per_10k": {},
        },
    },
    "engine": {"GoQ persistent": {"1024": [{"msgs_per_s": 10000.0, "drain_msgs_per_s": 40000.0}]}},
    "hygiene": [
        {
            "before": "GoQ persistent, gRPC stream t1",
            "waited_s": 29.5,
            "found": {"orders": {"send_queue": 0, "in_flight": 0}, "billing": {"receive_queue": 0, "in_flight": 3}},
        }
    ],
}


def test_tables_show_every_system_and_dashes_for_what_was_not_run() -> None:
    text = text_table(RESULTS)
    assert "19,000" in text
    assert "3.30" in text
    markdown = markdown_tables(RESULTS)
    assert "| NATS JetStream | 19,000 | 19,000 | 19,000 | 19.5 | - | - | - | - |" in markdown
    assert "| NATS JetStream | 0.30 | 0.80 | 3.30 | 10.50 | 19.10 |" in markdown
    assert "| gRPC hop (bare) | - | - | - | - | - | - | - | - |" in markdown
    assert "| gRPC hop (bare) | hop | 38 | 0 | - |" in markdown


def test_engine_ratio_is_streaming_end_to_end_over_the_engine_rate() -> None:
    (ratio,) = stats.engine_ratios(RESULTS)
    assert ratio == {
        "kind": "GoQ persistent",
        "size": "1024",
        "engine": 10000.0,
        "drain": 40000.0,
        "stream": 8000.0,
        "ratio": 0.8,
    }
    assert "| GoQ persistent | 1 KiB | 10,000 | 8,000 | 80% | 40,000 |" in markdown_tables(RESULTS)


def test_hygiene_lists_only_what_a_sidecar_held() -> None:
    assert stats.hygiene_lines(RESULTS) == [
        "- before GoQ persistent, gRPC stream t1: the sidecars held {'billing': {'in_flight': 3}}; waited 29.5 s"
    ]


def test_tables_of_a_run_without_scale_or_backlog_leave_them_out() -> None:
    assert stats.scale_table(RESULTS, markdown=True) == []
    assert stats.backlog_table(RESULTS, markdown=True) == []


BACKLOG_THAT_NEVER_CAME_BACK = {
    "backlog": {
        "count": 1_000_000,
        "built_s": 150.0,
        "rss_idle_mb": {"billing": 69.0},
        "rss_full_mb": {"mongod": 400.0},
        "samples": [
            {"t": 0.0, "queued": 0, "billing": 69.0, "orders": 69.0},
            {"t": 150.0, "queued": 10**6, "billing": 3300.0},
        ],
        "ready_s": None,
        "first_delivery_s": None,
        "rss_after_restart_mb": None,
        "rss_after_drain_mb": None,
        "drain_msgs_per_s": None,
        "restarts": [{"seconds": 12.0, "error": "pymongo.errors.NetworkTimeout: timed out"}] * 3,
    }
}


def test_a_restart_that_failed_is_shown_as_failed_not_as_a_time() -> None:
    table = "\n".join(stats.backlog_table(BACKLOG_THAT_NEVER_CAME_BACK, markdown=True))
    assert "| 1,000,000 | 150 | 69 / 3300 / - / - | 400 | failed 3 times | - | - |" in table


FLOOR = {
    "throughput": {
        "1024": {"msgs_per_s": 30000.0, "min": 29000.0, "max": 31000.0, "mb_per_s": 30.7},
        "65536": {"msgs_per_s": 2000.0, "min": 1900.0, "max": 2100.0, "mb_per_s": 131.1},
    },
    "latency": {"p50_ms": 1.9, "p90_ms": 3.0, "p99_ms": 4.2, "p999_ms": 10.0, "max_ms": 15.0},
}


def test_the_floor_is_shown_beside_goq_persistent_streaming_and_the_peers() -> None:
    markdown = markdown_tables({**RESULTS, "floor": FLOOR})
    assert "| MongoDB alone (GoQ's writes) | 30,000 | 2,000 | 131.1 | 1.90 | 4.20 |" in markdown
    assert "| GoQ persistent, gRPC stream | 8,000 | 500 | 32.8 | - | - |" in markdown
    assert "| NATS JetStream | 19,000 | - | - | 0.30 | 3.30 |" in markdown


RABBITMQ_AT_64_KIB = {
    "group": "peer",
    "throughput": {"65536": [{"msgs_per_s": 3500.0, "mb_per_s": 229.4}]},
    "latency": None,
    "rss_idle_mb": {},
    "rss_after_mb": {},
    "cpu_s_per_10k": {},
}


def test_the_reading_says_which_targets_lie_beyond_the_store_itself() -> None:
    systems = {**RESULTS["systems"], "RabbitMQ, quorum, pika": RABBITMQ_AT_64_KIB}
    text = report.reading({**RESULTS, "systems": systems, "floor": FLOOR})
    assert "GoQ persistent, gRPC stream reaches 27% at 1 KiB and 25% at 64 KiB of that floor's rate." in text
    assert (
        "the store alone takes 131 MB/s for the two copies the delivery promise needs, so the target"
        " (RabbitMQ's best, RabbitMQ, quorum, pika, 229 MB/s) is beyond MongoDB" in text
    )
    assert "the two majority writes alone take p99 4.20 ms" in text


def test_the_reading_does_not_blame_the_store_for_a_target_it_can_reach() -> None:
    slow_rabbit = {**RABBITMQ_AT_64_KIB, "throughput": {"65536": [{"msgs_per_s": 1000.0, "mb_per_s": 65.5}]}}
    systems = {**RESULTS["systems"], "RabbitMQ, quorum, pika": slow_rabbit}
    assert "the store alone takes" not in report.reading({**RESULTS, "systems": systems, "floor": FLOOR})


def test_a_run_without_the_floor_has_no_floor_table_or_reading() -> None:
    assert stats.floor_table(RESULTS, markdown=True) == []
    assert "floor" not in report.reading(RESULTS)
