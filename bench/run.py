"""End-to-end benchmark of GoQ side by side with RabbitMQ, NATS JetStream and a bare gRPC hop, in one run.

    make bench          # bench/setup.sh, then: 50,000 x 1 KiB, 3 interleaved runs each; 20 s at 1,000 msg/s
    make bench-quick    # bench/setup.sh, then a smoke run of a few minutes

Every server is started on 127.0.0.1 as our child and stopped by its PID at the end, also on failure or Ctrl-C.
Producer and consumer are processes of their own. Prints one table, writes the raw figures to
bench/results/ (JSON) and regenerates docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
import report
from goq_system import GoQSystem
from grpc_hop import HopSystem
from nats_system import NatsSystem
from rabbitmq_system import RabbitMQSystem
from stats import latency_summary, text_table

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc

HERE = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RUNNING: list[subprocess.Popen[str]] = []  # client processes, killed on the way out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def pids(self) -> dict[str, int]: ...


@dataclass
class Contender:
    """One row of the table: a started system and how its clients are run."""

    name: str
    server: Server
    produce: list[str]
    consume: list[str]
    goq: GoQSystem | None = None
    results: dict[str, Any] = field(default_factory=lambda: {"throughput": [], "latency": None})

    def settle(self) -> None:
        """Phases must not overlap: wait until GoQ's sidecars hold nothing; then a pause for background writes."""
        if self.goq:
            for target in (self.goq.producer_target, self.goq.consumer_target):
                with grpc.insecure_channel(target) as channel:
                    stub = queue_manager_pb2_grpc.QueueManagerStub(channel)
                    for _ in range(600):
                        stats = stub.Stats(pb.StatsRequest())
                        if stats.send_queue == 0 and stats.receive_queue == 0:
                            break
                        time.sleep(0.1)
        time.sleep(3.0 if self.goq else 1.0)


def goq_contenders(system: GoQSystem) -> list[Contender]:
    script = str(HERE / "clients.py")
    return [
        Contender(
            f"GoQ {kind}",
            system,
            [script, "produce", "--target", system.producer_target]
            + (["--persistent"] if kind == "persistent" else []),
            [script, "consume", "--target", system.consumer_target],
            goq=system,
        )
        for kind in ("transient", "persistent")
    ]


def peer_contender(system: RabbitMQSystem | NatsSystem | HopSystem) -> Contender:
    common = [str(HERE / "peer_clients.py"), "--system", system.system, "--target", system.target]
    return Contender(system.name, system, [common[0], "produce", *common[1:]], [common[0], "consume", *common[1:]])


def spawn(argv: list[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    RUNNING.append(process)
    return process


def finish(process: subprocess.Popen[str], what: str) -> dict[str, Any]:
    out, _ = process.communicate(timeout=900)
    RUNNING.remove(process)
    if process.returncode != 0:
        raise SystemExit(f"{what} failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run_once(contender: Contender, count: int, size: int, rate: float, run: str) -> dict[str, Any]:
    contender.settle()
    pids = contender.server.pids()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    options = ["--count", str(count), "--size", str(size), "--queue", f"bench-{run}"]
    consumer = spawn([*contender.consume, *options, "--within", "600"])
    if consumer.stdout is None or consumer.stdout.readline().strip() != "ready":
        raise SystemExit(f"{contender.name}: the consumer did not start")
    producer = spawn([*contender.produce, *options] + (["--rate", str(rate)] if rate else []))
    sent, got = finish(producer, f"{contender.name} producer"), finish(consumer, f"{contender.name} consumer")
    elapsed = float(got["last"]) - float(sent["start"])
    received = int(got["received"])
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    summary = {
        "count": count,
        "size": size,
        "rate": rate,
        "accepted": sent["accepted"],
        "received": received,
        "stale": int(got.get("stale", 0)),
        "seconds": elapsed,
        "msgs_per_s": received / elapsed if elapsed > 0 else 0.0,
        "mb_per_s": received * size / elapsed / 1e6 if elapsed > 0 else 0.0,
        **latency_summary([x * 1000 for x in got["latencies"]]),
        "cpu_s_per_10k": {name: seconds * 10_000 / count for name, seconds in cpu.items()},
    }
    line = f"  {contender.name:<20} {summary['msgs_per_s']:>9,.0f} msg/s  p99 {summary['p99_ms']:.2f} ms"
    if received < count or got.get("stale"):
        line += f"  (received {received:,} of {count:,}; {got.get('stale', 0):,} of earlier runs ignored)"
    print(line, flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 messages, 1 run, 5 s of latency")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--latency-seconds", type=float, default=None)
    parser.add_argument("--only", choices=["throughput", "latency"], default=None, help="run one scenario")
    parser.add_argument(
        "--systems", default="goq,rabbitmq,nats,hop", help="comma-separated subset of goq,rabbitmq,nats,hop"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()
    count = args.count or (10_000 if args.quick else 50_000)
    runs = args.runs or (1 if args.quick else 3)
    latency_seconds = args.latency_seconds or (5 if args.quick else 20)
    chosen = args.systems.split(",")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally below stops the servers

    load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    makers = {"goq": GoQSystem, "rabbitmq": RabbitMQSystem, "nats": NatsSystem, "hop": HopSystem}
    servers: list[Any] = []
    contenders: list[Contender] = []
    rss_idle: dict[str, dict[str, float]] = {}
    rss_after: dict[str, dict[str, float]] = {}
    try:
        for key in chosen:
            server = makers[key]()
            servers.append(server)
            print(f"starting {key}", flush=True)
            server.start()
            contenders += goq_contenders(server) if key == "goq" else [peer_contender(server)]
        time.sleep(2.0)
        for c in contenders:
            rss_idle[c.name] = {name: rss_mb(pid) for name, pid in c.server.pids().items()}
        for run in range(runs if args.only != "latency" else 0):  # interleaved: machine drift hits all alike
            print(f"throughput, run {run + 1} of {runs}: {count:,} x 1 KiB", flush=True)
            for i, c in enumerate(contenders):
                c.results["throughput"].append(run_once(c, count, 1024, 0.0, f"t{run}s{i}"))
        if args.only != "throughput":
            print(f"latency: {latency_seconds:g} s at 1,000 msg/s", flush=True)
            for i, c in enumerate(contenders):
                c.results["latency"] = run_once(c, int(1000 * latency_seconds), 1024, 1000.0, f"lat-s{i}")
        for c in contenders:
            rss_after[c.name] = {name: rss_mb(pid) for name, pid in c.server.pids().items()}
    finally:
        for process in RUNNING:
            process.kill()
        for server in reversed(servers):
            server.stop()

    results: dict[str, Any] = {
        "finished": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "settings": {"quick": args.quick, "count": count, "runs": runs, "latency_seconds": latency_seconds},
        "load_average": load_average,
        "versions": report.versions(),
        "machine": report.machine(),
        "systems": {},
    }
    for c in contenders:
        measured = c.results["throughput"] or ([c.results["latency"]] if c.results["latency"] else [])
        results["systems"][c.name] = {
            **c.results,
            "rss_idle_mb": rss_idle.get(c.name, {}),
            "rss_after_mb": rss_after.get(c.name, {}),
            "cpu_s_per_10k": measured[-1]["cpu_s_per_10k"] if measured else {},
        }
    print("\n" + text_table(results))
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = results["finished"].replace(" ", "T").replace(":", "")
    for name in (f"run-{stamp}.json", "latest.json"):
        (results_dir / name).write_text(json.dumps(results, indent=1))
    if not args.no_docs:
        report.write(results, HERE.parent / "docs" / "benchmarks.md")
        print("wrote docs/benchmarks.md and bench/results/latest.json")


if __name__ == "__main__":
    main()
