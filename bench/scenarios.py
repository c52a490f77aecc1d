"""The scale scenarios, each on a GoQ of its own (a fresh mongod) so that they leave nothing to the others.

- ``scale``: many identities (one sidecar process each, one mongod for all) exchanging persistent messages
  at once, in a ring: each sends to the next and receives from the previous.
- ``backlog``: a large backlog of persistent messages for a destination that is down: the sending
  sidecar's memory is sampled while it builds; then that sidecar is restarted and we measure how long until
  it serves again; then the destination comes back and we measure the first delivery and the drain rate.
"""

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
from accounting import account
from goq_system import DELIVERY_COUNTERS, GoQSystem, delivery_counters, poisoned_of, stats_of
from procs import BenchError, cpu_seconds, finish, rss_mb, spawn, wait_ready
from stats import latency_summary

from goq.devenv.errors import DevEnvError
from goq.devenv.sidecars import SidecarProcess

HERE = Path(__file__).resolve().parent
SAMPLE_EVERY = 1.0  # seconds between memory samples while a backlog builds
SETTLE_POLL = 2.0  # seconds between looks at every sidecar's queues while the last messages travel
RESTARTS = 3  # attempts to start the receiving sidecar again after the backlog built


def scale(identities: int, count: int, size: int = 1024) -> dict[str, Any]:
    names = tuple(f"app{i:03d}" for i in range(identities))
    system = GoQSystem(names)
    try:
        started = time.time()
        system.start(timeout=120)
        start_s = time.time() - started
        time.sleep(2.0)
        pids = system.pids()
        idle = {name: rss_mb(pid) for name, pid in pids.items()}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        ring_file = system.workdir / "ring.json"
        ring_file.write_text(json.dumps([[n, system.sidecars[n].grpc_target] for n in names]))
        options = ["--ring", str(ring_file), "--count", str(count), "--size", str(size), "--queue", "ring"]
        consumer = spawn([str(HERE / "ring_clients.py"), "consume", *options])
        wait_ready(consumer, "scale")
        producer = spawn([str(HERE / "ring_clients.py"), "produce", *options])
        sent = finish(producer, "scale producer")
        targets = [system.sidecars[n].grpc_target for n in names]
        if not _wait_delivered_or_poisoned(targets, consumer):
            consumer.send_signal(signal.SIGUSR1)  # what is missing is not on its way
        got = finish(consumer, "scale consumer")
        after = {name: rss_mb(pid) for name, pid in pids.items()}
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        total = identities * count
        poisoned = [i for target in targets for i in poisoned_of(target, limit=total)]
        retried = dict.fromkeys(DELIVERY_COUNTERS, 0.0)
        for name in names:
            for counter, value in delivery_counters(system.sidecars[name].health_url).items():
                retried[counter] += value
        where = account(sent["accepted_ids"], got["received_ids"], poisoned, sent=total)
        elapsed = float(got["last"]) - float(sent["start"])
        sidecars = [n for n in names if n in idle]
        result = {
            "identities": identities,
            "count_each": count,
            "size": size,
            **where,
            "duplicates": got["duplicates"],
            "delivery_counters": retried,
            "stale": got["stale"],
            "left_in_flight": got["left_in_flight"],
            "seconds": elapsed,
            "msgs_per_s": int(where["received"]) / elapsed if elapsed > 0 else 0.0,
            **latency_summary([x * 1000 for x in got["latencies"]]),
            "start_all_s": start_s,
            "sidecar_rss_idle_mb": _median_and_sum([idle[n] for n in sidecars]),
            "sidecar_rss_after_mb": _median_and_sum([after[n] for n in sidecars]),
            "mongod_rss_mb": {"idle": idle.get("mongod", 0.0), "after": after.get("mongod", 0.0)},
            "cpu_s_per_10k": {
                "sidecars": sum(cpu[n] for n in sidecars) * 10_000 / total,
                "mongod": cpu.get("mongod", 0.0) * 10_000 / total,
            },
        }
        print(
            f"  {identities} identities: {result['msgs_per_s']:,.0f} msg/s in all, p99 {result['p99_ms']:.1f} ms;"
            f" {where['received']:,} of {where['accepted']:,} accepted received ({where['refused']:,} refused,"
            f" {where['poisoned']:,} poisoned, {where['lost']:,} lost); all started in {start_s:.1f} s;"
            f" {retried['goq_delivery_attempts_failed']:,.0f} failed delivery attempts",
            flush=True,
        )
        if where["lost"]:
            print(f"  LOST: {where['lost']:,} accepted messages neither received nor poisoned: {where['lost_ids']}")
        return result
    finally:
        system.stop()


def _wait_delivered_or_poisoned(targets: list[str], consumer: subprocess.Popen[str], within: float = 600.0) -> bool:
    """Until the consumer has every message (True) or nothing is on its way any more: every sidecar's send
    and receive queues empty and nothing leased, twice in a row (a message poisoned after its last attempt,
    or refused, never arrives)."""
    deadline, quiet = time.time() + within, 0
    while quiet < 2 and consumer.poll() is None and time.time() < deadline:
        time.sleep(SETTLE_POLL)
        try:
            busy = sum(s["send_queue"] + s["receive_queue"] + s["in_flight"] for s in (stats_of(t) for t in targets))
        except grpc.RpcError:
            busy = 1  # a sidecar that does not answer may still hold messages
        quiet = quiet + 1 if busy == 0 else 0
    return consumer.poll() is not None


def _median_and_sum(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": ordered[len(ordered) // 2] if ordered else 0.0, "sum": sum(ordered)}


def restart(sidecar: SidecarProcess) -> list[dict[str, Any]]:
    """Start a stopped sidecar again, up to RESTARTS times as a kubelet would; each attempt's time and error."""
    attempts: list[dict[str, Any]] = []
    for _ in range(RESTARTS):
        began = time.time()
        try:
            sidecar.start(timeout=1800)
            attempts.append({"seconds": time.time() - began, "error": None})
            break
        except DevEnvError as exc:
            lines = [line for line in str(exc).splitlines() if line.strip()]
            attempts.append({"seconds": time.time() - began, "error": lines[-1] if lines else str(exc)})
            print(f"  restart attempt {len(attempts)} failed after {attempts[-1]['seconds']:.1f} s: {lines[-1:]}")
    return attempts


PATIENT = json.dumps({"maxAttempts": 1000, "initialBackoff": "200ms", "maxBackoff": "5s", "maxAge": "2h"})
"""A RetryPolicy that waits out a long outage, as one configured for backlogs would."""


def backlog(count: int, size: int = 1024) -> dict[str, Any]:
    """The destination is down while its sender accepts ``count`` persistent messages: the sender's memory
    is sampled while the backlog builds; the sender is restarted holding it (recovery); then the destination
    comes back and a consumer drains it."""
    system = GoQSystem(extra_env={"GOQ_RETRY_POLICY": PATIENT})
    try:
        system.start()
        sender, receiver = system.producer, system.consumer
        receiver.stop()  # the destination is down for the whole time the backlog builds
        time.sleep(2.0)
        idle = {name: rss_mb(pid) for name, pid in system.pids().items()}
        options = ["--count", str(count), "--size", str(size), "--queue", "backlog"]
        samples: list[dict[str, float]] = []
        started = time.time()
        producer = spawn(
            [
                str(HERE / "clients.py"),
                "produce",
                "--api",
                "stream",
                "--target",
                sender.grpc_target,
                "--persistent",
                *options,
            ]
        )
        deadline = started + 3600
        while True:
            try:
                queued = stats_of(sender.grpc_target, timeout=30)
            except grpc.RpcError as exc:  # a sidecar busy storing may answer late: sample again
                if time.time() > deadline or sender.process is None or not sender.process.alive():
                    raise BenchError(f"backlog: the sending sidecar does not answer Stats: {exc}") from None
                time.sleep(SAMPLE_EVERY)
                continue
            samples.append(
                {
                    "t": round(time.time() - started, 2),
                    "queued": queued["send_queue"],
                    "received": queued["sent"],
                    **{name: round(rss_mb(pid), 1) for name, pid in system.pids().items()},
                }
            )
            if queued["send_queue"] >= count or time.time() > deadline:
                break
            time.sleep(SAMPLE_EVERY)
        built_s = time.time() - started
        finish(producer, "backlog producer")
        if samples[-1]["queued"] < count:
            raise BenchError(f"backlog: only {samples[-1]['queued']:,} of {count:,} messages were accepted")
        full = {name: rss_mb(pid) for name, pid in system.pids().items()}
        result: dict[str, Any] = {
            "holder": "orders",
            "count": count,
            "size": size,
            "built_s": built_s,
            "rss_idle_mb": idle,
            "rss_full_mb": full,
            "samples": samples,
            "ready_s": None,
            "first_delivery_s": None,
            "rss_after_restart_mb": None,
            "drained": 0,
            "drain_msgs_per_s": None,
            "rss_after_drain_mb": None,
        }
        peak = max(s.get("orders", 0.0) for s in samples)
        print(
            f"  {count:,} queued in {built_s:.0f} s; sending sidecar RSS idle {idle.get('orders', 0):.0f} MB,"
            f" peak {peak:.0f} MB",
            flush=True,
        )
        stopping = time.time()
        sender.stop(timeout=120)
        result["stop_s"] = time.time() - stopping
        restarting = time.time()
        result["restarts"] = restarts = restart(sender)
        if restarts[-1]["error"]:
            return result
        assert sender.process is not None
        result["ready_s"] = time.time() - restarting
        result["rss_after_restart_mb"] = rss_mb(sender.process.pid)
        result["queued_after_restart"] = stats_of(sender.grpc_target, timeout=120)["send_queue"]
        receiver.start(timeout=120)  # the destination is back
        drainer = [str(HERE / "clients.py"), "consume", "--api", "grpc", "--target", receiver.grpc_target]
        consumer = spawn([*drainer, *options, "--within", "3600"])
        wait_ready(consumer, "backlog drain")
        got = finish(consumer, "backlog drain", timeout=3600)
        drain_s = float(got["last"]) - float(got["start"])
        assert sender.process is not None
        result.update(
            first_delivery_s=float(got["first"]) - restarting if got["first"] else None,
            drained=got["received"],
            drain_s=drain_s,
            drain_msgs_per_s=got["received"] / drain_s if drain_s > 0 else 0.0,
            rss_after_drain_mb=rss_mb(sender.process.pid),
            left_in_flight=got["left_in_flight"],
        )
        print(
            f"  restart: ready in {result['ready_s']:.1f} s, first delivery after"
            f" {result['first_delivery_s'] or 0:.1f} s; drained {got['received']:,} at"
            f" {result['drain_msgs_per_s']:,.0f} msg/s",
            flush=True,
        )
        return result
    finally:
        system.stop()
