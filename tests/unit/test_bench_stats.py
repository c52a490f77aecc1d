"""The benchmark's pure figures: percentiles, summaries of repeated runs and the tables (bench/stats.py)."""

import importlib.util
from pathlib import Path

import pytest

# bench/ is scripts, not a package: load its module by path, under a name of its own.
_spec = importlib.util.spec_from_file_location(
    "goq_bench_stats", Path(__file__).resolve().parents[2] / "bench/stats.py"
)
assert _spec is not None
assert _spec.loader is not None
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)
percentile, latency_summary, spread = stats.percentile, stats.latency_summary, stats.spread
throughput_row, text_table, markdown_tables = stats.throughput_row, stats.text_table, stats.markdown_tables


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
            "throughput": [{"msgs_per_s": 19000.0, "mb_per_s": 19.5}],
            "latency": {"p50_ms": 0.3, "p90_ms": 0.8, "p99_ms": 3.3, "p999_ms": 10.5, "max_ms": 19.1},
            "rss_idle_mb": {"nats-server": 12.0},
            "rss_after_mb": {"nats-server": 24.0},
            "cpu_s_per_10k": {"nats-server": 0.3},
        },
        "gRPC hop (bare)": {
            "throughput": [],
            "latency": None,
            "rss_idle_mb": {"hop": 38.0},
            "rss_after_mb": {},
            "cpu_s_per_10k": {},
        },
    }
}


def test_tables_show_every_system_and_dashes_for_what_was_not_run() -> None:
    text = text_table(RESULTS)
    assert "19,000 [19,000-19,000]" in text
    assert "3.30" in text
    markdown = markdown_tables(RESULTS)
    assert "| NATS JetStream | 19,000 | 19,000 | 19,000 | 19.5 | 0.30 | 0.80 | 3.30 | 10.50 | 19.10 |" in markdown
    assert "| gRPC hop (bare) | - | - | - | - | - | - | - | - | - |" in markdown
    assert "| gRPC hop (bare) | hop | 38 | 0 | - |" in markdown
