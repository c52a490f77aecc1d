"""The benchmark harness itself (bench/), on a tiny scale: so that it cannot rot unnoticed between full runs.

The full tiny run is GoQ only (RabbitMQ and NATS need Debian packages the test machines may lack; the peers'
own test runs where bench/setup.sh installed them): every scenario and every application API goes through
once with a handful of messages. No figure is judged, only that every message arrived, no lease was left
behind and the results and tables were written.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    scale = results["scale"]
    assert (scale["accepted"], scale["received"], scale["poisoned"], scale["lost"]) == (3 * 20, 3 * 20, 0, 0)
    floor = results["floor"]
    assert floor["throughput"]["1024"]["msgs_per_s"] > 0
    assert floor["throughput"]["65536"]["mb_per_s"] > 0
    assert 0 < floor["latency"]["p50_ms"] <= floor["latency"]["p99_ms"]
    assert "The floor: MongoDB alone" in run.stdout
    assert results["backlog"]["drained"] == 300


def test_goq_on_a_replica_set_records_what_mongodb_wrote_for_each_persistent_message(tmp_path: Path) -> None:
    """The store a production cluster has (three members), and the bytes it wrote: with random padding, at
    least the payload itself once per member that holds a copy."""
    argv = [sys.executable, str(ROOT / "bench/run.py"), "--systems", "goq", "--apis", "stream", "--runs", "1"]
    argv += ["--mongodb", "replica-set", "--scenarios", "throughput", "--count", "200", "--large-count", "20"]
    argv += ["--results", str(tmp_path), "--no-docs", "--no-plot"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=280, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["settings"]["mongodb"] == "replica-set"
    persistent = results["systems"]["GoQ persistent, gRPC stream"]
    assert {"mongod 0", "mongod 1", "mongod 2"} <= set(persistent["rss_idle_mb"])
    (large,) = persistent["throughput"]["65536"]
    assert large["received"] == 20
    assert large["mongodb_bytes_per_msg"] > 3 * 65536, "three members each keep at least one copy"
    (transient,) = results["systems"]["GoQ transient, gRPC stream"]["throughput"]["65536"]
    assert transient["mongodb_bytes_per_msg"] is None
    assert "MongoDB wrote" in run.stdout


def test_goq_with_mutual_tls_between_its_sidecars_delivers_everything(tmp_path: Path) -> None:
    """The peer port as a cluster runs it by default: each sidecar with its own certificate."""
    argv = [sys.executable, str(ROOT / "bench/run.py"), "--systems", "goq", "--apis", "stream", "--runs", "1"]
    argv += ["--peer-tls", "--scenarios", "throughput", "--count", "200", "--large-count", "10"]
    argv += ["--results", str(tmp_path), "--no-docs", "--no-plot"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=280, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads((tmp_path / "latest.json").read_text())
    assert results["settings"]["peer_tls"] is True
    for name, entry in results["systems"].items():
        for size, count in (("1024", 200), ("65536", 10)):
            (measured,) = entry["throughput"][size]
            assert measured["received"] == count, name
    assert "mutual TLS between the sidecars: orders as spiffe://cluster.local/ns/default/goq/orders" in run.stdout


PEERS_INSTALLED = (
    Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists()
    and any(Path(p).exists() for p in ("/usr/sbin/nats-server", "/usr/bin/nats-server"))
    and all(importlib.util.find_spec(client) for client in ("pika", "aio_pika", "nats", "uvloop"))
)


@pytest.mark.skipif(not PEERS_INSTALLED, reason="the peers and their clients come from bench/setup.sh")
def test_each_peer_runs_through_its_fastest_client_and_the_slower_ones_are_only_rows(tmp_path: Path) -> None:
    argv = [sys.executable, str(ROOT / "bench/run.py"), "--systems", "rabbitmq,nats", "--runs", "1"]
    argv += ["--scenarios", "throughput", "--count", "300", "--large-count", "20", "--slower-clients"]
    argv += ["--results", str(tmp_path), "--no-docs", "--no-plot"]
    run = subprocess.run(argv, capture_output=True, text=True, timeout=280, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    systems = json.loads((tmp_path / "latest.json").read_text())["systems"]
    fastest = {name for name, entry in systems.items() if entry["fastest_client"]}
    assert fastest == {"RabbitMQ, classic, pika", "RabbitMQ, quorum, pika", "NATS JetStream, nats-py on uvloop"}
    assert set(systems) - fastest == {"RabbitMQ, classic, aio-pika", "NATS JetStream, nats-py on asyncio"}
    for name, entry in systems.items():
        for size, count in (("1024", 300), ("65536", 20)):
            (measured,) = entry["throughput"][size]
            assert measured["accepted"] == count, name
            assert measured["received"] == count, name
