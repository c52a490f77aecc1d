"""GoQ end-to-end benchmark: throughput and latency between two sidecars, with real MongoDB.

    .venv/bin/python bench/run.py            # full: 50,000 x 1 KiB, 3 runs each; 20 s at 1,000 msg/s
    .venv/bin/python bench/run.py --quick    # a smoke run in about a minute

Application -> sidecar -> sidecar -> application, producer and consumer in processes of their own.
Prints a table and writes the raw figures to bench/results/goq.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
from goq_system import GoQSystem

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc

HERE = Path(__file__).resolve().parent
CLIENTS = HERE / "clients.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def client(role: str, target: str, **options: object) -> subprocess.Popen[str]:
    args = [sys.executable, str(CLIENTS), role, "--target", target]
    for key, value in options.items():
        if value is True:
            args.append(f"--{key}")
        elif value not in (False, None):
            args += [f"--{key}", str(value)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = process.communicate(timeout=900)
    if process.returncode != 0:
        raise SystemExit(f"benchmark client failed ({process.returncode})")
    result: dict[str, object] = json.loads(out)
    return result


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def settle(system: GoQSystem, pause: float = 3.0) -> None:
    """Wait until both sidecars hold nothing, then ``pause`` for background writes: phases must not overlap."""
    for target in (system.producer_target, system.consumer_target):
        with grpc.insecure_channel(target) as channel:
            stub = queue_manager_pb2_grpc.QueueManagerStub(channel)
            for _ in range(600):
                stats = stub.Stats(pb.StatsRequest())
                if stats.send_queue == 0 and stats.receive_queue == 0:
                    break
                time.sleep(0.1)
    time.sleep(pause)


def run_once(system: GoQSystem, count: int, size: int, persistent: bool, rate: float = 0.0) -> dict[str, object]:
    settle(system)
    pids = system.pids()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    consumer = client("consume", system.consumer_target, count=count, within=600)
    time.sleep(0.3)
    producer = client(
        "produce", system.producer_target, count=count, size=size, persistent=persistent, rate=rate or None
    )
    sent, got = finish(producer), finish(consumer)
    latencies = [x * 1000 for x in got["latencies"]]  # type: ignore[attr-defined]
    elapsed = float(got["last"]) - float(sent["start"])  # type: ignore[arg-type]
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    return {
        "count": count,
        "size": size,
        "persistent": persistent,
        "rate": rate,
        "accepted": sent["accepted"],
        "received": got["received"],
        "seconds": elapsed,
        "msgs_per_s": int(got["received"]) / elapsed,  # type: ignore[call-overload]
        "mb_per_s": int(got["received"]) * size / elapsed / 1e6,  # type: ignore[call-overload]
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "p999_ms": percentile(latencies, 99.9),
        "max_ms": max(latencies),
        "cpu_s_per_10k": {name: seconds * 10_000 / count for name, seconds in cpu.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 messages, 1 run, 5 s of latency")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--latency-seconds", type=float, default=None)
    parser.add_argument("--only", choices=["throughput", "latency"], default=None, help="run one scenario")
    args = parser.parse_args()
    count = args.count or (10_000 if args.quick else 50_000)
    runs = args.runs or (1 if args.quick else 3)
    latency_seconds = args.latency_seconds or (5 if args.quick else 20)

    system = GoQSystem()
    system.start()
    try:
        idle = {name: rss_mb(pid) for name, pid in system.pids().items()}
        throughput: dict[str, list[dict[str, object]]] = {"transient": [], "persistent": []}
        for _ in range(runs if args.only != "latency" else 0):  # interleaved: machine drift hits both alike
            for kind in ("transient", "persistent"):
                throughput[kind].append(run_once(system, count, 1024, kind == "persistent"))
        latency = {
            kind: run_once(system, int(1000 * latency_seconds), 1024, kind == "persistent", rate=1000)
            for kind in ("transient", "persistent")
            if args.only != "throughput"
        }
        after = {name: rss_mb(pid) for name, pid in system.pids().items()}
    finally:
        system.stop()

    print(f"\nGoQ end to end, 1 KiB payloads, {count:,} messages x {runs} run(s) (median [min-max])")
    print(f"{'scenario':<28}{'msg/s':>28}{'MB/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for kind, results in throughput.items():
        if not results:
            continue
        rates = [float(r["msgs_per_s"]) for r in results]  # type: ignore[arg-type]
        mbs = statistics.median(float(r["mb_per_s"]) for r in results)  # type: ignore[arg-type]
        lat = results[len(results) // 2]
        print(
            f"{'throughput ' + kind:<28}{statistics.median(rates):>10,.0f} [{min(rates):,.0f}-{max(rates):,.0f}]"
            f"{mbs:>10.1f}{float(lat['p50_ms']):>9.1f}{float(lat['p99_ms']):>9.1f}"  # type: ignore[arg-type]
        )
    print(f"\nLatency at 1,000 msg/s for {latency_seconds:g} s (ms)")
    print(f"{'scenario':<28}{'p50':>8}{'p90':>8}{'p99':>8}{'p99.9':>8}{'max':>8}")
    for kind, r in latency.items():
        cells = "".join(f"{float(r[k]):>8.2f}" for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"))  # type: ignore[arg-type]
        print(f"{'latency ' + kind:<28}{cells}")
    print("\nRSS MB idle -> after: " + ", ".join(f"{n} {idle[n]:.0f} -> {after[n]:.0f}" for n in idle))
    cpu = (throughput["persistent"] or [latency["persistent"]])[-1]["cpu_s_per_10k"]
    print("CPU s per 10k persistent messages: " + ", ".join(f"{n} {v:.2f}" for n, v in cpu.items()))  # type: ignore[attr-defined]

    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "goq.json").write_text(
        json.dumps({"throughput": throughput, "latency": latency, "rss_idle_mb": idle, "rss_after_mb": after}, indent=1)
    )


if __name__ == "__main__":
    main()
