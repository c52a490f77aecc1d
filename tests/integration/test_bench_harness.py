"""The benchmark harness itself (bench/), on a tiny scale: so that it cannot rot unnoticed between full runs.

Only GoQ is run (RabbitMQ and NATS need Debian packages the test machines may lack); every scenario and
every application API goes through once with a handful of messages. No figure is judged, only that every
message arrived, no lease was left behind and the results and tables were written.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_run_of_every_scenario_delivers_everything_and_writes_its_results(tmp_path: Path) -> None:
    argv = [sys.executable, str(ROOT / "bench/run.py"), "--systems", "goq", "--runs", "1"]
    argv += ["--count", "200", "--large-count", "10", "--latency-seconds", "1"]
    argv += ["--identities", "3", "--scale-count", "20", "--backlog", "300"]
    argv += ["--results", str(tmp_path), "--no-docs", "--no-plot"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=280, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Throughput, end to end" in run.stdout

    results = json.loads((tmp_path / "latest.json").read_text())
    systems = results["systems"]
    assert len(systems) == 8  # transient and persistent, each over four APIs
    for name, entry in systems.items():
        for size, count in (("1024", 200), ("65536", 10)):
            (measured,) = entry["throughput"][size]
            assert measured["received"] == count, name
            assert measured["left_in_flight"] == 0, name
        assert entry["latency"]["received"] == 1000, name
    for kind, sizes in results["engine"].items():
        assert sizes["1024"][0]["received"] >= 200, kind
    assert results["scale"]["received"] == 3 * 20
    floor = results["floor"]
    assert floor["throughput"]["1024"]["msgs_per_s"] > 0
    assert floor["throughput"]["65536"]["mb_per_s"] > 0
    assert 0 < floor["latency"]["p50_ms"] <= floor["latency"]["p99_ms"]
    assert "The floor: MongoDB alone" in run.stdout
    assert results["backlog"]["drained"] == 300
