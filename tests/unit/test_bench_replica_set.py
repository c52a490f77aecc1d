"""docs/benchmarks.md sets GoQ on a three-member replica set beside one mongod, from a second run's results
(bench/report.py), and refuses results that are not such a run."""

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .bench_modules import BENCH, load_bench

report = load_bench("report", "goq_bench_report_replica_set")
stats = sys.modules["stats"]  # the one report.py imports

STREAM, UNARY = "GoQ persistent, gRPC stream", "GoQ persistent, gRPC unary"
SECTION = f"### {report.REPLICA_SET_TITLE}"
NO_OUTPUT = ("--no-docs", "--no-plot", "--results")


def run(msgs_per_s: float, mb_per_s: float, stored: float | None) -> dict[str, Any]:
    return {"msgs_per_s": msgs_per_s, "mb_per_s": mb_per_s, "mongodb_bytes_per_msg": stored}


def latency(p50: float, p99: float) -> dict[str, float]:
    return {"p50_ms": p50, "p90_ms": p50, "p99_ms": p99, "p999_ms": p99, "max_ms": p99}


def results(store: str, systems: dict[str, Any]) -> dict[str, Any]:
    return {
        "settings": {
            "quick": True,
            "counts": {"1024": 5000, "65536": 500},
            "runs": 3,
            "latency_seconds": 5,
            "identities": 10,
            "scale_count": 200,
            "backlog": 100000,
            "mongodb": store,
        },
        "finished": "2026-12-05 11:00",
        "load_average": "0.50 0.40 0.30",
        "versions": {"python": "3.11"},
        "machine": {"cpu": "2 x test"},
        "systems": systems,
        "engine": {},
        "hygiene": [],
    }


ONE_MONGOD = results(
    "single",
    {
        "GoQ transient, gRPC stream": {
            "group": "goq",
            "throughput": {"1024": [run(30000.0, 30.7, None)]},
            "latency": latency(1.2, 2.5),
        },
        STREAM: {
            "group": "goq",
            "throughput": {
                "1024": [run(20000.0, 20.5, 5120.0), run(24000.0, 24.6, 5120.0), run(22000.0, 22.5, 5120.0)],
                "65536": [run(915.5, 60.0, 2 * 65536.0)],
            },
            "latency": latency(6.5, 30.0),
            "rss_idle_mb": {"orders": 60.0, "billing": 58.0, "mongod": 200.0},
        },
        UNARY: {"group": "goq", "throughput": {"1024": [run(2000.0, 2.0, 9000.0)]}, "latency": None},
        "NATS JetStream, nats-py on uvloop": {
            "group": "peer",
            "throughput": {"1024": [run(40000.0, 41.0, None)]},
            "latency": latency(0.3, 0.7),
        },
    },
)
THREE_MEMBERS = results(
    "replica-set",
    {
        "GoQ transient, gRPC stream": {
            "group": "goq",
            "throughput": {"1024": [run(29000.0, 29.7, None)]},
            "latency": latency(1.3, 2.6),
        },
        STREAM: {
            "group": "goq",
            "throughput": {
                "1024": [run(11000.0, 11.3, 15 * 1024.0)],
                "65536": [run(457.8, 30.0, 6.5 * 65536.0), run(400.0, 26.2, None)],
            },
            "latency": latency(9.0, 45.0),
        },
    },
)


def cells(lines: list[str]) -> dict[tuple[str, str], tuple[str, str, str]]:
    """The section's table as (GoQ row, figure) -> (one mongod, three members, three / one)."""
    found, row = {}, ""
    for line in lines:
        if not line.startswith("| ") or line.startswith("| GoQ | figure"):
            continue
        name, figure, one, three, ratio = (cell.strip() for cell in line.strip("|").split("|"))
        row = name or row
        found[(row, figure)] = (one, three, ratio)
    return found


def test_each_persistent_row_of_both_runs_is_shown_one_mongod_beside_three_members() -> None:
    table = cells(report.replica_set_section(ONE_MONGOD, THREE_MEMBERS))
    assert table == {
        (STREAM, "1 KiB msg/s"): ("22,000", "11,000", "0.50x"),
        (STREAM, "64 KiB MB/s"): ("60.0", "28.1", "0.47x"),
        (STREAM, "p50 ms at 1,000 msg/s"): ("6.50", "9.00", "1.38x"),
        (STREAM, "p99 ms at 1,000 msg/s"): ("30.00", "45.00", "1.50x"),
        (STREAM, "MongoDB wrote per 1 KiB message, x payload"): ("5.00x", "15.00x", "3.00x"),
        (STREAM, "MongoDB wrote per 64 KiB message, x payload"): ("2.00x", "6.50x", "3.25x"),
    }


def test_the_section_reads_the_rates_as_shares_and_says_bytes_are_summed_over_the_members() -> None:
    text = "\n".join(report.replica_set_section(ONE_MONGOD, THREE_MEMBERS))
    assert (
        f"- {STREAM}, three members: 50% of one mongod's 1 KiB rate; 47% of its 64 KiB MB/s;"
        " p50 / p99 at 1,000 msg/s 9.00 / 45.00 ms against 6.50 / 30.00 ms;"
        " MongoDB wrote 6.50x the 64 KiB payload per message, the three members together, against 2.00x on one."
    ) in text
    assert "summed over the three members" in text
    assert "finished 2026-12-05 11:00 UTC, load average 0.50 0.40 0.30" in text


def test_a_figure_missing_from_either_run_is_a_dash_not_a_ratio() -> None:
    no_latency = copy.deepcopy(THREE_MEMBERS)
    no_latency["systems"][STREAM]["latency"] = None
    table = cells(report.replica_set_section(ONE_MONGOD, no_latency))
    assert table[(STREAM, "p99 ms at 1,000 msg/s")] == ("30.00", "-", "-")
    assert table[(STREAM, "1 KiB msg/s")] == ("22,000", "11,000", "0.50x")


def test_the_page_has_the_section_right_after_the_floor(tmp_path: Path) -> None:
    floor = {
        "throughput": {"1024": {"msgs_per_s": 30000.0, "min": 29000.0, "max": 31000.0, "mb_per_s": 30.7}},
        "latency": latency(1.9, 4.2),
    }
    page = tmp_path / "benchmarks.md"
    report.write({**ONE_MONGOD, "floor": floor}, page, plot=False, replica_set=THREE_MEMBERS)
    text = page.read_text()
    floor_at, section_at = text.index(f"### {stats.TITLES['floor']}"), text.index(SECTION)
    assert floor_at < section_at < text.index(f"### {stats.TITLES['resources']}")
    assert f"| {STREAM} | 1 KiB msg/s | 22,000 | 11,000 | 0.50x |" in text


def test_without_replica_set_results_the_page_is_as_before(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    report.write(ONE_MONGOD, page, plot=False)
    text = page.read_text()
    assert SECTION not in text
    assert stats.markdown_tables(ONE_MONGOD) in text
    assert "`--replica-set-results" in text  # the configurations say how to get the section


def test_a_run_on_one_mongod_is_refused_as_the_replica_set_run(tmp_path: Path) -> None:
    with pytest.raises(report.ResultsError, match="measured with --mongodb single, not on a replica set"):
        report.replica_set_section(ONE_MONGOD, ONE_MONGOD)
    page = tmp_path / "benchmarks.md"
    with pytest.raises(report.ResultsError):
        report.write(ONE_MONGOD, page, plot=False, replica_set=ONE_MONGOD)
    assert not page.exists()


def test_a_replica_set_run_without_goq_persistent_rows_is_refused() -> None:
    peers_only = results(
        "replica-set", {"NATS JetStream, nats-py on uvloop": ONE_MONGOD["systems"]["NATS JetStream, nats-py on uvloop"]}
    )
    transient_only = results(
        "replica-set", {"GoQ transient, gRPC stream": THREE_MEMBERS["systems"]["GoQ transient, gRPC stream"]}
    )
    nothing_measured = results("replica-set", {STREAM: {"group": "goq", "throughput": {}, "latency": None}})
    for found in (peers_only, transient_only, nothing_measured):
        with pytest.raises(report.ResultsError, match="no GoQ persistent row with figures"):
            report.replica_set_section(ONE_MONGOD, found)


def test_runs_that_share_no_persistent_row_are_refused() -> None:
    unary_only = results("replica-set", {UNARY: ONE_MONGOD["systems"][UNARY]})
    stream_only = copy.deepcopy(ONE_MONGOD)
    del stream_only["systems"][UNARY]
    with pytest.raises(report.ResultsError, match="no GoQ persistent row is in both runs"):
        report.replica_set_section(stream_only, unary_only)


def test_a_main_run_on_a_replica_set_is_refused_as_the_one_mongod_side() -> None:
    with pytest.raises(report.ResultsError, match="main run's GoQ store is --mongodb replica-set"):
        report.replica_set_section(THREE_MEMBERS, THREE_MEMBERS)


def test_a_file_that_is_not_results_of_the_benchmark_is_refused(tmp_path: Path) -> None:
    garbled, other = tmp_path / "garbled.json", tmp_path / "other.json"
    garbled.write_text("{not json")
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(report.ResultsError, match="is not JSON"):
        report.read_results(garbled)
    with pytest.raises(report.ResultsError, match=r"is not a results file of bench/run\.py"):
        report.read_results(other)
    with pytest.raises(report.ResultsError, match="cannot read"):
        report.read_results(tmp_path / "missing.json")


def test_run_py_refuses_a_one_mongod_file_as_replica_set_results_before_doing_anything(tmp_path: Path) -> None:
    saved, out = tmp_path / "latest.json", str(tmp_path / "out")
    saved.write_text(json.dumps(ONE_MONGOD))
    done = subprocess.run(
        [sys.executable, "run.py", "--from-json", str(saved), "--replica-set-results", str(saved), *NO_OUTPUT, out],
        cwd=BENCH,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--mongodb single, not on a replica set" in done.stderr
    assert not Path(out).exists()
