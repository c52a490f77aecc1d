"""End-to-end benchmark of GoQ side by side with RabbitMQ, NATS JetStream and a bare gRPC hop, in one run.

    make bench          # bench/setup.sh, then the full run (see docs/benchmarks.md for what it measures)
    make bench-quick    # bench/setup.sh, then the same scenarios, small: a few minutes

Every server is started on 127.0.0.1 as our child and stopped by its PID at the end, also on failure or Ctrl-C.
Producer and consumer are processes of their own. Prints one table, writes the raw figures to bench/results/
(JSON) with a plot (PNG), and regenerates docs/benchmarks.md and docs/benchmarks.png.
"""

import argparse
import datetime
import json
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import floor
import report
import scenarios
from goq_system import GoQSystem, stats_of
from grpc_hop import HopSystem
from nats_system import NatsSystem
from procs import QUIET_WAIT, BenchError, cpu_seconds, finish, kill_clients, rss_mb, spawn, wait_quiet, wait_ready
from rabbitmq_system import RabbitMQSystem
from stats import goq_row, latency_summary, text_table

HERE = Path(__file__).resolve().parent
SIZES = (1024, 65536)
APIS = {  # producer API -> (label, consumer API)
    "stream": ("gRPC stream", "grpc"),
    "unary": ("gRPC unary", "grpc"),
    "rest-json": ("REST JSON", "rest"),
    "rest-raw": ("REST raw", "rest"),
}
LEASE_WAIT = 45.0  # longest a phase waits for the sidecars to hold nothing: the 30 s lease and some


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
    fastest_client: bool = True
    """A peer's fastest client setup: only these enter the verdicts."""
    results: dict[str, Any] = field(default_factory=lambda: {"throughput": {}, "latency": None})


@dataclass
class Hygiene:
    """What the GoQ sidecars held when a phase was about to start: it should be nothing."""

    log: list[dict[str, Any]] = field(default_factory=list)

    def settle(self, system: GoQSystem | None, before: str) -> None:
        """Wait until the sidecars hold nothing (queued, or leased to an application); record it if they did."""
        if system is None:
            time.sleep(1.0)
            return
        start = time.time()
        first = current = system.stats()
        while any(s["send_queue"] or s["receive_queue"] or s["in_flight"] for s in current.values()):
            if time.time() - start > LEASE_WAIT:
                break
            time.sleep(0.2)
            current = system.stats()
        waited = time.time() - start
        if waited > 0.05:
            entry = {"before": before, "waited_s": round(waited, 2), "found": first, "after": current}
            self.log.append(entry)
            held = {
                n: {k: v for k, v in s.items() if k in ("send_queue", "receive_queue", "in_flight") and v}
                for n, s in first.items()
            }
            print(f"  (before {before}: the sidecars held {held}; waited {waited:.1f} s)", flush=True)
        time.sleep(1.0)  # background writes of the last phase


def goq_contenders(system: GoQSystem, apis: list[str]) -> list[Contender]:
    script = str(HERE / "clients.py")
    producer, consumer = system.producer, system.consumer
    contenders = []
    for kind in ("transient", "persistent"):
        for api in apis:
            label, receive = APIS[api]
            send = [script, "produce", "--api", api, "--target", producer.grpc_target, "--rest", producer.rest_url]
            if kind == "persistent":
                send.append("--persistent")
            receive_argv = [script, "consume", "--api", receive, "--target", consumer.grpc_target]
            receive_argv += ["--rest", consumer.rest_url]
            contenders.append(Contender(goq_row(kind, label), system, send, receive_argv, goq=system))
    return contenders


PEER_SETUPS = {  # system -> (row suffix, client options, the fastest setup): each peer as its users tune it
    "rabbitmq": [
        ("classic, pika", ["--client", "pika", "--queue-type", "classic"], True),
        ("quorum, pika", ["--client", "pika", "--queue-type", "quorum"], True),
        ("classic, aio-pika", ["--client", "aio-pika", "--loop", "asyncio"], False),
    ],
    "nats": [
        ("nats-py on uvloop", ["--loop", "uvloop"], True),
        ("nats-py on asyncio", ["--loop", "asyncio"], False),
    ],
    "hop": [("", ["--loop", "asyncio"], True)],
}


def peer_contenders(system: RabbitMQSystem | NatsSystem | HopSystem, slower: bool) -> list[Contender]:
    """One row per client setup of a peer: its fastest ones, and with ``slower`` the slower clients too."""
    script = str(HERE / "peer_clients.py")
    common = ["--system", system.system, "--target", system.target]
    contenders = []
    for suffix, options, fastest in PEER_SETUPS[system.system]:
        if fastest or slower:
            name = f"{system.name}, {suffix}" if suffix else system.name
            argv = [*common, *options]
            produce, consume = [script, "produce", *argv], [script, "consume", *argv]
            contenders.append(Contender(name, system, produce, consume, fastest_client=fastest))
    return contenders


def run_once(contender: Contender, hygiene: Hygiene, count: int, size: int, rate: float, run: str) -> dict[str, Any]:
    hygiene.settle(contender.goq, f"{contender.name} {run}")
    pids = contender.server.pids()
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    stored_before = contender.goq.bytes_written() if contender.goq and "persistent" in contender.name else None
    options = ["--count", str(count), "--size", str(size), "--queue", run]
    consumer = spawn([*contender.consume, *options, "--within", "900"])
    wait_ready(consumer, contender.name)
    producer = spawn([*contender.produce, *options] + (["--rate", str(rate)] if rate else []))
    sent, got = finish(producer, f"{contender.name} producer"), finish(consumer, f"{contender.name} consumer")
    elapsed = float(got["last"]) - float(sent["start"])
    received = int(got["received"])
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    if stored_before is not None and contender.goq:
        contender.goq.checkpoint()  # what the run left dirty counts too
        stored = (contender.goq.bytes_written() - stored_before) / max(received, 1)
    else:
        stored = None
    summary = {
        "count": count,
        "size": size,
        "rate": rate,
        "accepted": sent["accepted"],
        "received": received,
        "stale": int(got.get("stale", 0)),
        "left_in_flight": got.get("left_in_flight"),
        "seconds": elapsed,
        "msgs_per_s": received / elapsed if elapsed > 0 else 0.0,
        "mb_per_s": received * size / elapsed / 1e6 if elapsed > 0 else 0.0,
        **latency_summary([x * 1000 for x in got["latencies"]]),
        "cpu_s_per_10k": {name: seconds * 10_000 / count for name, seconds in cpu.items()},
        "mongodb_bytes_per_msg": stored,
    }
    line = f"  {contender.name:<30} {summary['msgs_per_s']:>9,.0f} msg/s {summary['mb_per_s']:>7.1f} MB/s"
    line += f"  p99 {summary['p99_ms']:.2f} ms"
    if stored is not None:
        line += f"  MongoDB wrote {stored / size:.2f}x the payload"
    if received < count or summary["stale"] or summary["left_in_flight"]:
        line += (
            f"  (received {received:,} of {count:,}; {summary['stale']:,} of earlier runs ignored;"
            f" {summary['left_in_flight'] or 0} leases left)"
        )
    print(line, flush=True)
    return summary


def engine_once(system: GoQSystem, hygiene: Hygiene, kind: str, count: int, size: int, run: str) -> dict[str, Any]:
    """The engine's own end-to-end rate: from the producer's start until the receiving sidecar holds every
    message, with no application receiving (streaming send, the fastest way in); then the backlog is
    drained by a gRPC streaming consumer, which gives the receive path's rate on its own."""
    hygiene.settle(system, f"GoQ {kind} engine {run}")
    target = system.consumer.grpc_target
    baseline = stats_of(target)["received"]
    options = ["--count", str(count), "--size", str(size), "--queue", run]
    producer = spawn(
        [str(HERE / "clients.py"), "produce", "--api", "stream", "--target", system.producer.grpc_target, *options]
        + (["--persistent"] if kind == "persistent" else [])
    )
    deadline = time.time() + 900
    while (received := stats_of(target)["received"] - baseline) < count and time.time() < deadline:
        time.sleep(0.01)
    done = time.time()
    sent = finish(producer, f"GoQ {kind} engine producer")
    drainer = [str(HERE / "clients.py"), "consume", "--api", "grpc", "--target", target, "--within", "900"]
    consumer = spawn([*drainer, *options])
    wait_ready(consumer, f"GoQ {kind} engine drain")
    got = finish(consumer, f"GoQ {kind} engine drain")
    rate = received / (done - float(sent["start"]))
    drain = float(got["received"]) / (float(got["last"]) - float(got["start"])) if got["last"] else 0.0
    name = goq_row(kind, "engine")
    print(f"  {name:<30} {rate:>9,.0f} msg/s  (receive path alone: {drain:,.0f} msg/s)", flush=True)
    return {
        "count": count,
        "size": size,
        "received": received,
        "msgs_per_s": rate,
        "mb_per_s": rate * size / 1e6,
        "drain_msgs_per_s": drain,
        "left_in_flight": got.get("left_in_flight"),
    }


def stopped(signum: int, frame: object) -> None:
    print("benchmark stopped by SIGTERM: stopping the servers", file=sys.stderr, flush=True)
    sys.exit(143)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the same scenarios, small: a few minutes")
    parser.add_argument("--count", type=int, default=None, help="1 KiB messages per throughput run")
    parser.add_argument("--large-count", type=int, default=None, help="64 KiB messages per throughput run")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--latency-seconds", type=float, default=None)
    parser.add_argument("--identities", type=int, default=None, help="sidecars of the scale scenario")
    parser.add_argument("--scale-count", type=int, default=None, help="messages each identity sends")
    parser.add_argument("--backlog", type=int, default=None, help="persistent messages of the backlog scenario")
    parser.add_argument(
        "--scenarios",
        default="throughput,engine,latency,floor,scale,backlog",
        help="comma-separated subset of throughput,engine,latency,floor,scale,backlog",
    )
    parser.add_argument(
        "--systems", default="goq,rabbitmq,nats,hop", help="comma-separated subset of goq,rabbitmq,nats,hop"
    )
    parser.add_argument(
        "--mongodb",
        choices=["single", "replica-set"],
        default="single",
        help="GoQ's store: one mongod, or three members on this machine as in production",
    )
    parser.add_argument(
        "--peer-tls",
        action="store_true",
        help="mutual TLS between GoQ's sidecars, as a cluster runs them by default",
    )
    parser.add_argument(
        "--mongod-history-window",
        type=int,
        metavar="SECONDS",
        help="GoQ's mongod: minSnapshotHistoryWindowInSeconds (default: as the dev environment starts it)",
    )
    parser.add_argument(
        "--slower-clients",
        action="store_true",
        help="also the peers' slower client setups (aio-pika; nats-py on asyncio): rows, never the verdicts",
    )
    parser.add_argument("--apis", default=",".join(APIS), help=f"GoQ's APIs, a subset of {','.join(APIS)}")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="where the JSON and PNG go")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md and .png")
    parser.add_argument("--no-plot", action="store_true", help="no PNG (matplotlib not needed)")
    parser.add_argument("--from-json", type=Path, help="measure nothing: table, plot and docs from saved results")
    parser.add_argument(
        "--replica-set-results",
        type=Path,
        metavar="JSON",
        help="the results of a GoQ run made with --mongodb replica-set: docs/benchmarks.md shows its GoQ persistent"
        " rows beside this run's on one mongod",
    )
    args = parser.parse_args()
    try:
        saved = report.read_results(args.from_json) if args.from_json else None
        replica_set = report.read_results(args.replica_set_results) if args.replica_set_results else None
        if replica_set is not None:  # refused now, not after a run of half an hour
            if saved is not None:
                rows, store = report.persistent_rows(saved), saved["settings"].get("mongodb", "single")
            else:
                with_goq = "goq" in args.systems.split(",")
                rows = [goq_row("persistent", APIS[api][0]) for api in args.apis.split(",") if with_goq and api in APIS]
                store = args.mongodb
            report.shared_rows(rows, store, replica_set)
    except report.ResultsError as exc:
        parser.error(str(exc))
    if saved is not None:
        publish(saved, args, replica_set)
        return
    counts = {
        1024: args.count or (5_000 if args.quick else 50_000),
        65536: args.large_count or (500 if args.quick else 5_000),
    }
    runs = args.runs or (1 if args.quick else 3)
    latency_seconds = args.latency_seconds or (5 if args.quick else 20)
    identities = args.identities or (10 if args.quick else 100)
    scale_count = args.scale_count or (200 if args.quick else 1_000)
    backlog_count = args.backlog or (100_000 if args.quick else 1_000_000)
    chosen = args.systems.split(",")
    wanted = set(args.scenarios.split(","))
    apis = args.apis.split(",")
    signal.signal(signal.SIGTERM, stopped)  # so that the finally below stops the servers

    load_average = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    makers = {"goq": GoQSystem, "rabbitmq": RabbitMQSystem, "nats": NatsSystem, "hop": HopSystem}
    servers: list[Any] = []
    contenders: list[Contender] = []
    goq: GoQSystem | None = None
    engine: dict[str, dict[str, list[dict[str, Any]]]] = {}
    hygiene = Hygiene()
    rss_idle: dict[str, dict[str, float]] = {}
    rss_after: dict[str, dict[str, float]] = {}
    results: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "settings": {
            "quick": args.quick,
            "counts": {str(k): v for k, v in counts.items()},
            "runs": runs,
            "latency_seconds": latency_seconds,
            "identities": identities,
            "scale_count": scale_count,
            "backlog": backlog_count,
            "scenarios": sorted(wanted),
            "apis": apis,
            "slower_clients": args.slower_clients,
            "mongodb": args.mongodb,
            "peer_tls": args.peer_tls,
            "mongod_history_window": args.mongod_history_window,
        },
        "load_average": load_average,
        "versions": report.versions(),
        "machine": report.machine(),
    }
    main_phases = wanted & {"throughput", "engine", "latency"}
    try:
        for key in chosen if main_phases else []:
            server = (
                GoQSystem(
                    replica_set=args.mongodb == "replica-set",
                    peer_tls=args.peer_tls,
                    history_window=args.mongod_history_window,
                )
                if key == "goq"
                else makers[key]()
            )
            servers.append(server)
            print(f"starting {key}", flush=True)
            server.start()
            if isinstance(server, GoQSystem):
                goq = server
                contenders += goq_contenders(server, apis)
            else:
                contenders += peer_contenders(server, args.slower_clients)
        time.sleep(2.0)
        for c in contenders:
            rss_idle[c.name] = {name: rss_mb(pid) for name, pid in c.server.pids().items()}
        for run in range(runs):  # interleaved: machine drift hits all alike
            for size in SIZES:
                count = counts[size]
                if "throughput" in wanted:
                    print(f"throughput, run {run + 1} of {runs}: {count:,} x {size // 1024} KiB", flush=True)
                    for i, c in enumerate(contenders):
                        result = run_once(c, hygiene, count, size, 0.0, f"t{run}{size // 1024}s{i}")
                        c.results["throughput"].setdefault(str(size), []).append(result)
                if "engine" in wanted and goq is not None:
                    for kind in ("transient", "persistent"):
                        result = engine_once(goq, hygiene, kind, count, size, f"e{run}{size // 1024}{kind[0]}")
                        engine.setdefault(f"GoQ {kind}", {}).setdefault(str(size), []).append(result)
        if "latency" in wanted:
            print(f"latency: {latency_seconds:g} s at 1,000 msg/s, 1 KiB", flush=True)
            if goq is not None:
                goq.checkpoint()  # what the throughput runs wrote, flushed now rather than during a latency run
            for i, c in enumerate(contenders):
                waited = wait_quiet(longest=min(QUIET_WAIT, 3 * latency_seconds))
                print(f"  {c.name}: the machine was quiet after {waited:.1f} s", flush=True)
                c.results["latency"] = run_once(c, hygiene, int(1000 * latency_seconds), 1024, 1000.0, f"lat-s{i}")
        if goq is not None:
            hygiene.settle(goq, "the end")
        for c in contenders:
            rss_after[c.name] = {name: rss_mb(pid) for name, pid in c.server.pids().items()}
    except BenchError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from None
    finally:
        kill_clients()
        for server in reversed(servers):
            server.stop()

    results["systems"] = {}
    for c in contenders:
        first = c.results["throughput"].get("1024") or ([c.results["latency"]] if c.results["latency"] else [])
        results["systems"][c.name] = {
            **c.results,
            "group": "goq" if c.goq else "peer",
            "fastest_client": c.fastest_client,
            "rss_idle_mb": rss_idle.get(c.name, {}),
            "rss_after_mb": rss_after.get(c.name, {}),
            "cpu_s_per_10k": first[-1]["cpu_s_per_10k"] if first else {},
        }
    results["engine"] = engine
    results["hygiene"] = hygiene.log
    try:
        if "floor" in wanted:
            print("floor: MongoDB alone doing GoQ's writes for each persistent message", flush=True)
            results["floor"] = floor.floor(counts, runs, latency_seconds)
        if "scale" in wanted:
            print(f"scale: {identities} identities, {scale_count:,} x 1 KiB persistent each, in a ring", flush=True)
            results["scale"] = scenarios.scale(identities, scale_count)
        if "backlog" in wanted:
            print(f"backlog: {backlog_count:,} x 1 KiB persistent for a destination that is down", flush=True)
            results["backlog"] = scenarios.backlog(backlog_count)
    except BenchError as exc:
        raise SystemExit(f"benchmark failed: {exc}") from None
    finally:
        kill_clients()
    results["finished"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")

    args.results.mkdir(parents=True, exist_ok=True)
    stamp = results["finished"].replace(" ", "T").replace(":", "")
    for name in (f"run-{stamp}.json", "latest.json"):
        (args.results / name).write_text(json.dumps(results, indent=1))
    publish(results, args, replica_set)


def publish(results: dict[str, Any], args: argparse.Namespace, replica_set: dict[str, Any] | None = None) -> None:
    """Print the tables; write the plot next to the results, and docs/benchmarks.md and .png (with a run on a
    replica set beside this one when ``replica_set`` is given)."""
    print("\n" + text_table(results))
    args.results.mkdir(parents=True, exist_ok=True)
    written = [] if args.from_json else [str(args.results / "latest.json")]
    if not args.no_plot:
        import plot  # matplotlib: the bench extra

        plot.write(results, args.results / "benchmarks.png")
        written.append(str(args.results / "benchmarks.png"))
    if not args.no_docs:
        docs = HERE.parent / "docs"
        if not args.no_plot:
            shutil.copyfile(args.results / "benchmarks.png", docs / "benchmarks.png")
        try:
            report.write(results, docs / "benchmarks.md", plot=not args.no_plot, replica_set=replica_set)
        except report.ResultsError as exc:
            saved = args.from_json or args.results / "latest.json"
            raise SystemExit(f"docs/benchmarks.md not written: {exc} (rebuild it with --from-json {saved})") from None
        written += ["docs/benchmarks.md", "docs/benchmarks.png"]
    print("wrote " + ", ".join(written))


if __name__ == "__main__":
    main()
