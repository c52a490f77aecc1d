"""docs/benchmarks.md from one run's results: the tables, the configurations and versions, the machine, a reading."""

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any

from stats import STREAM, TITLES, engine_ratios, goq_row, hygiene_lines, tables, throughput_row

CONFIGURATIONS = """\
- **GoQ** (every variant): mongod (single-node replica set, WiredTiger cache 2 GB, journal flushed every
  10 ms: `--journalCommitInterval 10`, no snapshot history kept: `minSnapshotHistoryWindowInSeconds=0`,
  both see docs/deploy.md) and two `goq-sidecar` processes (orders ->
  billing) on loopback, default settings (lease 30 s, batch 256, window 8, gRPC core's iomgr engine), queue
  limits raised to 2,000,000 so that the overflow policy never acts. *Transient* messages live in the sidecars'
  memory; *persistent* ones are written to MongoDB (majority) before they are accepted, and again by the
  receiving sidecar before it acknowledges them to the sender (delivery starts while the sender's write is
  in flight, so the two writes overlap; see docs/sidecar.md).
- **GoQ's application APIs** (`bench/clients.py`), one row each:
  - *gRPC stream*: `SendStream` with `SendBatch`es of 500 messages but at most 1 MiB (16 of 64 KiB; one
    message per batch at a fixed rate);
  - *gRPC unary*: one `Send` per message, up to 64 calls awaiting their answer at once;
  - *REST JSON*: `POST /v1/messages` with a base64 payload in JSON, up to 64 requests at once (aiohttp);
  - *REST raw*: the same with an `application/octet-stream` body and `?to=...&persistent=...`.
  The gRPC rows receive with the server-streaming `Receive` (max_in_flight 5000, max_batch 1000, or 16 for
  64 KiB messages so that a batch stays under gRPC's 4 MiB default message limit) and acknowledge every
  5 ms in one message on an `AckStream`; the REST rows long-poll `GET /v1/messages?max=1000&wait=1` and
  acknowledge each answer's messages in one `POST /v1/messages/ack` (up to 64 at once). Every consumer
  drains before it closes: it reads on until nothing came for 0.5 s and acknowledges
  all it holds, then reports how many leases the sidecar still holds (`left_in_flight` in the JSON).
- **GoQ's engine rate** (the yardstick of issue 4): the same streaming producer with *no application
  receiving*; the rate runs from the producer's start until the receiving sidecar's `Stats.received` counter
  shows every message (polled every 10 ms). It is everything GoQ does between two applications except the
  receive API. The backlog is then drained by a streaming consumer: that is the receive path's rate alone.
  "stream / engine" is the streaming end-to-end rate of the same repetition divided by the engine rate; the
  two are separate runs, so on a busy machine noise can put the ratio above 100%.
- **Each peer at its best**: every verdict compares with a peer's fastest Python client, set up as its users
  tune it; slower clients appear as rows only with `--slower-clients` and never enter a verdict.
- **RabbitMQ**: Debian's `rabbitmq-server` run in the foreground as a private node (own epmd, data
  directory, free ports, no plugins), Erlang schedulers not busy-waiting. Durable queue, persistent
  messages (delivery mode 2), publisher confirms with up to 1,000 publishes awaiting confirmation,
  consumer with prefetch 2,000 and manual acks (`multiple=True` every 200 messages). Client: pika (an
  event-loop connection for the producer, a blocking one for the consumer), on a classic queue and on a
  quorum queue (RabbitMQ's replicated durable type), one row each; aio-pika as a slower row.
- **NATS JetStream**: Debian's `nats-server -js` with a private store directory; a stream with file storage,
  acknowledged publishes (`js.publish`, up to 4,000 awaiting their PubAck), a durable push consumer with
  explicit acks, one `ack()` per message. Client: nats-py on uvloop; on asyncio's own loop as a slower row.
- **Payloads** are random bytes after the stamp (bench/filler.py): MongoDB compresses its files and journal,
  the brokers do not, and no real payload is one repeated byte.
- **GoQ's store**: one mongod by default; `--mongodb replica-set` runs three members on this machine, as a
  production store is. For persistent rows the run records what MongoDB wrote (data files and journal, from
  `serverStatus`, every member) per message. The section "GoQ on a three-member replica set" comes from a
  second run, GoQ alone: `bench/run.py --systems goq --scenarios throughput,latency --mongodb replica-set
  --no-docs --no-plot --results bench/results/replica-set`, then the page is built with
  `--replica-set-results bench/results/replica-set/latest.json` added to the main run's command (or to
  `bench/run.py --from-json bench/results/latest.json`); without it the page has no such section.
- **gRPC hop (bare)**: `bench/grpc_hop.py`, a grpc.aio server that hands raw-bytes batches (500 messages of
  1 KiB or 16 of 64 KiB per call; one message per call at a fixed rate) from a producer's client stream to
  one consumer's server stream through a 64-item in-memory queue: no storage, no acknowledgement.
- **Throughput and latency**, every system: producer and consumer are separate processes; the consumer
  subscribes first, then the producer starts; each payload's first 16 bytes carry its send time and the run's
  tag, and the consumer computes the end-to-end latency. Throughput = messages received / (last arrival -
  producer start). Systems run in turn within each repetition (interleaved), all servers up at once.
  CPU per 10,000 messages is taken from /proc over each system's last 1 KiB throughput run. Each latency
  run starts once the machine is quiet (under 10% of the cores busy, at most 60 s), GoQ's mongod having been
  told to write out what the throughput runs left (`fsync`): otherwise the first system in line measured
  the last phase's checkpoint instead of itself.
- **Scale**: a GoQ of its own: one mongod and one sidecar per identity, every sidecar knowing all others
  (static peer map); each identity sends its messages (persistent, 1 KiB, `SendStream`) to the next one in
  a ring and receives the previous one's over its own `Receive` stream; one producer and one consumer
  process drive all identities at once (`bench/ring_clients.py`). Every message is accounted for by id:
  the producer records what each sidecar accepted, the consumer what arrived (duplicates apart); once every
  sidecar's queues are empty the runner lists every poison queue, and the row says how many accepted
  messages arrived, were poisoned (with their reason, in that sidecar's poison queue) or were lost, and how
  many sends were refused (`bench/accounting.py`). A hundred sidecars and mongod share this machine's cores.
- **The floor** (`bench/floor.py`): one process with two MongoDB clients (one per "sidecar") against a
  mongod started like GoQ's, making exactly the writes GoQ makes for persistent messages, a batch's messages
  in one document as GoQ stores them: insert into `outbox` (majority), then into `inbox` (majority, with the
  unique index of the messages' keys), then, in the background, delete from `outbox` and turn the `inbox`
  document into a tombstone (w:1, batched every 25 ms as GoQ's). Throughput: batches of 500 x 1 KiB
  or 1 MiB of 64 KiB, the receiving side storing one batch while the sending side stores the next, median of
  the runs. Latency: one 1 KiB message at a time at 1,000 msg/s for the same seconds as the end-to-end runs,
  both majority writes timed, the first tenth left out as warm-up.
- **Backlog**: a GoQ of its own with a patient RetryPolicy: billing's sidecar is down while the producer
  streams persistent 1 KiB messages to orders for it; RSS of orders and mongod is sampled every second while
  the backlog builds (until orders' `Stats.send_queue` shows all). Then orders is stopped (SIGTERM) and started again,
  up to 3 times if it exits while starting (as a kubelet restarts a crashed container, without its back-off):
  "ready" is the time from the first attempt until its `/readyz` answers; then billing is started again and a
  streaming consumer drains the backlog ("first delivery": from the first restart attempt of orders until the
  consumer gets the first message).
- Between phases the runner asks both GoQ sidecars for `Stats` and waits (at most 45 s) until they hold
  nothing queued or leased; anything found is listed under "Phase hygiene".
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
    try:
        from goq.devenv.mongo import find_mongod

        found["mongod"] = _command([str(find_mongod()), "--version"])
    except Exception:  # a version line is nice to have, never a reason to fail the run
        found["mongod"] = "?"
    packages = ("goq", "grpcio", "h11", "aiohttp", "pymongo", "pika", "aio-pika", "nats-py", "uvloop", "matplotlib")
    for package in packages:
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


def _rates(results: dict[str, Any], size: str) -> dict[str, float]:
    return {
        name: throughput_row(e["throughput"][size])["msgs_per_s"]
        for name, e in results["systems"].items()
        if e.get("throughput", {}).get(size)
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


FLAT_MB = 25  # growth while the second half of a backlog queues that still counts as flat


def best_peer(results: dict[str, Any], rates: dict[str, float], system: str) -> tuple[str, float] | None:
    """A peer's fastest row among its fastest client setups: verdicts never compare with a slower client."""
    rows = {
        name: rate
        for name, rate in rates.items()
        if name.startswith(system) and results["systems"][name].get("fastest_client", True)
    }
    if not rows:
        return None
    name = max(rows, key=lambda n: rows[n])
    return name, rows[name]


def reading(results: dict[str, Any]) -> str:
    """What this run's figures say, against the targets of issue 21; no claim the numbers do not make.

    Each peer counts with its fastest client setup in this run (see bench/peer_clients.py)."""
    systems = results["systems"]
    small, large = _rates(results, "1024"), _rates(results, "65536")
    lines = []
    nats, rabbit = best_peer(results, small, "NATS"), best_peer(results, small, "RabbitMQ")
    for kind in ("persistent", "transient"):
        mine = {n: r for n, r in small.items() if n.startswith(f"GoQ {kind}")}
        if not mine:
            continue
        best = max(mine, key=lambda n: mine[n])
        line = f"- Best GoQ {kind} (1 KiB): {best}, {mine[best]:,.0f} msg/s"
        if nats:
            line += f" = {mine[best] / nats[1]:.2f}x {nats[0]} ({nats[1]:,.0f})"
            line += f"; target >= NATS JetStream tuned: {_verdict(mine[best] >= nats[1])}"
        if rabbit:
            line += f"; {mine[best] / rabbit[1]:.2f}x {rabbit[0]} ({rabbit[1]:,.0f})"
            if kind == "persistent":
                line += f"; target >= RabbitMQ's best: {_verdict(mine[best] >= rabbit[1])}"
        lines.append(line + ".")
    for kind in ("persistent", "transient"):
        stream = small.get(goq_row(kind, STREAM))
        if not stream:
            continue
        others = [
            f"{label} {small[goq_row(kind, label)] / stream:.0%}"
            for label in ("gRPC unary", "REST JSON", "REST raw")
            if goq_row(kind, label) in small
        ]
        if others:
            lines.append(f"- GoQ {kind}, 1 KiB, other APIs as a share of gRPC streaming: {', '.join(others)}.")
    large_persistent = {n: r for n, r in large.items() if n.startswith("GoQ persistent")}
    if large_persistent:
        best = max(large_persistent, key=lambda n: large_persistent[n])
        mbs = throughput_row(systems[best]["throughput"]["65536"])["mb_per_s"]
        peers = ", ".join(
            f"{n} {throughput_row(systems[n]['throughput']['65536'])['mb_per_s']:.0f} MB/s"
            for n in large
            if not n.startswith("GoQ")
        )
        line = f"- 64 KiB persistent: best {best} {mbs:.0f} MB/s (peers: {peers})"
        rabbit_large = best_peer(results, large, "RabbitMQ")
        if rabbit_large:
            rabbit_mbs = rabbit_large[1] * 65536 / 1e6
            line += f"; target >= RabbitMQ's best ({rabbit_large[0]}): {_verdict(mbs >= rabbit_mbs)}"
        lines.append(line + ".")
    lines += _store_lines(results)
    lines += _per_message_api_lines(results)
    for e in engine_ratios(results):
        if e["ratio"]:
            lines.append(
                f"- {e['kind']}, {int(e['size']) // 1024} KiB: streaming gRPC end to end is {e['ratio']:.0%}"
                f" of the engine's own rate ({e['stream']:,.0f} of {e['engine']:,.0f} msg/s);"
                f" target >= 80%: {_verdict(e['ratio'] >= 0.8)}."
                f" The receive path alone drains {e['drain']:,.0f} msg/s."
            )
    latency = {n: e["latency"] for n, e in systems.items() if e.get("latency")}
    for kind, p50_target, p99_target in (("transient", None, 2.0), ("persistent", 2.0, 4.0)):
        mine = {n: float(v["p99_ms"]) for n, v in latency.items() if n.startswith(f"GoQ {kind}")}
        if mine:
            best = min(mine, key=lambda n: mine[n])
            p50 = float(latency[best]["p50_ms"])
            peers = ", ".join(
                f"{n} {float(v['p50_ms']):.2f} / {float(v['p99_ms']):.2f} ms"
                for n, v in latency.items()
                if not n.startswith("GoQ")
            )
            line = f"- p50 / p99 at 1,000 msg/s, GoQ {kind}: best {best} {p50:.2f} / {mine[best]:.2f} ms"
            line += f" (peers: {peers}); target p99 <= {p99_target:g} ms: {_verdict(mine[best] <= p99_target)}"
            if p50_target is not None:
                line += f", p50 <= {p50_target:g} ms: {_verdict(p50 <= p50_target)}"
            lines.append(line + ".")
    idle = [
        mb
        for e in systems.values()
        if e.get("group") == "goq"
        for process, mb in e.get("rss_idle_mb", {}).items()
        if not process.startswith("mongod")
    ]
    if idle:
        lines.append(f"- Sidecar RSS idle: {max(idle):.0f} MB; target <= 60 MB: {_verdict(max(idle) <= 60)}.")
    lines += _floor_lines(results, small, large)
    backlog = results.get("backlog")
    if backlog:
        samples = backlog["samples"]
        holder = backlog.get("holder", "billing")
        idle_mb = backlog["rss_idle_mb"].get(holder, 0.0)
        peak = max(s.get(holder, 0.0) for s in samples)
        per_100k = (peak - idle_mb) * 100_000 / backlog["count"]
        half = next((s for s in samples if s.get("received", s["queued"]) >= backlog["count"] / 2), samples[-1])
        late = samples[-1].get(holder, 0.0) - half.get(holder, 0.0)
        verdict = (
            f"{_verdict(late < FLAT_MB)} (read: it grew {late:.0f} MB while the second half of the backlog queued;"
            f" flat means less than {FLAT_MB} MB)"
            if backlog["count"] >= 100_000
            else "not judged (fewer than 100,000 messages)"
        )
        line = (
            f"- Backlog of {backlog['count']:,} persistent messages for a destination that is down: the sidecar"
            f" holding it ({holder}) grew from {idle_mb:.0f} MB"
            f" to {peak:.0f} MB ({per_100k:,.0f} MB per 100,000 messages queued); target 'memory flat, a bounded"
            f" window': {verdict}."
        )
        failed = [r for r in backlog.get("restarts", []) if r["error"]]
        for i, attempt in enumerate(failed, 1):
            line += f" Restart attempt {i} **failed** after {attempt['seconds']:.1f} s: `{attempt['error']}`."
        if backlog["ready_s"] is not None:
            line += (
                f" After a restart it was ready in {backlog['ready_s']:.1f} s at"
                f" {backlog['rss_after_restart_mb']:.0f} MB and delivered the first message"
                f" {backlog['first_delivery_s'] or 0:.1f} s after the restart began; the backlog drained at"
                f" {backlog['drain_msgs_per_s']:,.0f} msg/s."
            )
        else:
            line += " The sidecar never came back: the backlog was not delivered."
        lines.append(line)
    scale = results.get("scale")
    if scale:
        total = scale["identities"] * scale["count_each"]
        if "accepted" in scale:
            arrived = (
                f"{scale['received']:,} of the {scale['accepted']:,} accepted (of {total:,}) arrived,"
                f" {scale['poisoned']:,} went to a poison queue, {scale['lost']:,} lost;"
            )
        else:  # results of a run before the benchmark counted accepted, poisoned and lost messages
            arrived = f"{scale['received']:,} of {total:,} messages arrived,"
        lines.append(
            f"- {scale['identities']} identities at once: {arrived} {scale['msgs_per_s']:,.0f} msg/s in all, p99"
            f" {scale['p99_ms']:.0f} ms; the sidecars took {scale['sidecar_rss_after_mb']['sum'] / 1024:.1f} GB"
            " together."
        )
    return "\n".join(lines)


STORE_TARGET = 1.3
"""Issue 21: MongoDB bytes written per persistent 64 KiB message, at most this many times the payload."""
API_CPU_TARGETS_US = {"gRPC unary": 193.0, "REST JSON": 113.0}
"""Issue 21: the sending sidecar's CPU per message, half of what issue 21 measured (386 and 226 µs)."""


def _store_lines(results: dict[str, Any]) -> list[str]:
    """What MongoDB wrote (data files and journal, every member) per persistent message, against the payload."""
    lines = []
    for name, entry in results["systems"].items():
        if not name.startswith("GoQ persistent"):
            continue
        runs = [r for r in entry.get("throughput", {}).get("65536", []) if r.get("mongodb_bytes_per_msg")]
        if runs:
            ratio = statistics.median(r["mongodb_bytes_per_msg"] for r in runs) / 65536
            lines.append(
                f"- {name}, 64 KiB: MongoDB wrote {ratio:.2f}x the payload per message"
                f" ({results['settings'].get('mongodb', 'single')}); target <= {STORE_TARGET:g}x:"
                f" {_verdict(ratio <= STORE_TARGET)}."
            )
    return lines


def _per_message_api_lines(results: dict[str, Any]) -> list[str]:
    """The sending sidecar's CPU per message through the per-message APIs, 1 KiB persistent."""
    lines = []
    for label, target in API_CPU_TARGETS_US.items():
        entry = results["systems"].get(goq_row("persistent", label))
        cpu = (entry or {}).get("cpu_s_per_10k", {}).get("orders")
        if cpu is not None:
            micros = float(cpu) * 100  # s per 10,000 messages -> µs per message
            lines.append(
                f"- GoQ persistent, {label}: the sending sidecar took {micros:.0f} µs of CPU per message;"
                f" target <= {target:.0f} µs: {_verdict(micros <= target)}."
            )
    return lines


def _floor_lines(results: dict[str, Any], small: dict[str, float], large: dict[str, float]) -> list[str]:
    """Where GoQ persistent stands against what its store alone allows, and which targets lie beyond that."""
    found = results.get("floor")
    if not found:
        return []
    rates, latency = found.get("throughput", {}), found.get("latency")
    parts = []
    if "1024" in rates:
        parts.append(f"1 KiB {rates['1024']['msgs_per_s']:,.0f} msg/s")
    if "65536" in rates:
        parts.append(f"64 KiB {rates['65536']['mb_per_s']:.0f} MB/s")
    if latency:
        parts.append(f"at 1,000 msg/s p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms")
    lines = [
        "- The floor, MongoDB alone making GoQ's writes for persistent messages (per batch: two majority inserts"
        " in sequence, a delete and a tombstone; no sidecars, no gRPC): " + "; ".join(parts) + "."
    ]
    mine = goq_row("persistent", STREAM)
    shares = []
    for size, table, unit in (("1024", small, "1 KiB"), ("65536", large, "64 KiB")):
        if mine in table and size in rates:
            shares.append(f"{table[mine] / rates[size]['msgs_per_s']:.0%} at {unit}")
    if shares:
        lines.append(f"- {mine} reaches {' and '.join(shares)} of that floor's rate.")
    rabbit_large = best_peer(results, large, "RabbitMQ")
    if "65536" in rates and rabbit_large and rates["65536"]["msgs_per_s"] < rabbit_large[1]:
        lines.append(
            f"- 64 KiB persistent: the store alone takes {rates['65536']['mb_per_s']:.0f} MB/s for the two"
            f" copies the delivery promise needs, so the target (RabbitMQ's best, {rabbit_large[0]},"
            f" {rabbit_large[1] * 65536 / 1e6:.0f} MB/s) is beyond MongoDB on this machine, not only beyond GoQ."
        )
    if latency and latency["p99_ms"] > 4.0:
        lines.append(
            f"- Persistent p99: the two majority writes alone take p99 {latency['p99_ms']:.2f} ms at 1,000 msg/s,"
            " before any hop, signing or application: the 4 ms target is beyond MongoDB on this machine."
        )
    return lines


SHAPES = """\
What the reading above computes is this run's verdict; what follows is why the rows differ as they do, from
how each path works (it holds whatever the numbers of a particular run are):

- **Streaming gRPC is GoQ's fast path.** `SendStream` carries 500 messages per request and `Receive` hands
  out up to 1,000 per batch with one acknowledgement per 5 ms on an `AckStream`, so per-message costs are
  amortised. This is the row to
  compare with the peers, whose clients also pipeline (1,000 or 4,000 unconfirmed publishes, prefetch 2,000).
- **gRPC unary** pays one RPC per message (64 in flight): HTTP/2 framing, a task and a protobuf round trip
  each, in both the client and the sidecar; the receive side is the same stream as above.
- **REST** pays one HTTP request per message to send (a long poll hands out many at once, and one request
  acknowledges them all), with JSON and, for JSON sends, base64 (a third more bytes, and encoding on both
  sides, which is what separates REST JSON from REST raw at 64 KiB). It is the convenient path, not the
  fast one.
- **Persistent vs transient**: a persistent message is written to MongoDB (majority write concern) by the
  sending sidecar before `Send` returns, again by the receiving sidecar before it acknowledges the transfer
  (the two overlap: delivery does not wait for the sender's write),
  and its records are updated or removed after delivery and acknowledgement (background writes): four
  writes per batch (a batch's messages share a document on each side) and an index entry per message,
  through one mongod on the same 2 cores, where RabbitMQ and NATS append to their own log in one process.
- **Processes**: GoQ is three processes (two Python sidecars and mongod) competing for 2 cores with the
  benchmark's own producer and consumer; each peer is one native broker. Python's per-message overhead in
  the sidecars is most of GoQ's CPU per 10,000 messages.
- **Memory**: an idle sidecar's RSS is mostly its imports (grpcio, pymongo, protobuf, prometheus-client:
  about 540 modules). Its REST and health server and its Kubernetes client are small ones of its own on h11:
  aiohttp's cost 11 MB more per sidecar. Under a backlog a sender keeps at most `GOQ_LANE_WINDOW` messages
  per destination in memory and the rest in MongoDB only, so its memory stays flat however long the outage;
  a receiver holds what waits for its application in memory, bounded by `receiveQueueLimit` (with
  `overflow: reject` the rest stays with the senders).
- **Latency at 1,000 msg/s** measures one message at a time through every hop: the tail (p99 and beyond)
  on a shared 2-core machine is mostly scheduling of the five processes involved. A persistent message
  waits for two majority writes, the sender's and the receiver's, which overlap; the floor's latency row is
  the two writes in sequence, alone.
"""


PROFILE = """\
A snapshot, not regenerated by the command (2026-11-28, quiet machine, probes of two sidecars and a mongod as
the benchmark starts them; CPU from /proc, Python stacks from `py-spy`):

- **Persistent, 1 KiB, as fast as it goes** (100,000 messages over `SendStream`, 3 runs each): with one
  MongoDB document per message, 15,700-15,900 msg/s and mongod the largest user, 0.94-0.97 of a core (about
  60 us per message: each message inserted, updated or deleted on both sides, most of a burst also stored,
  loaded and unmarked beyond the lane window one by one). With a batch's messages in one document on each
  side (docs/sidecar.md, "MongoDB layout"): 20,400-21,600 msg/s, mongod 0.43-0.47, the sending sidecar
  0.63, the receiving one 0.57-0.61, the clients 0.11-0.13: the sidecars are now the limit. py-spy on the
  sender finds no single hot spot: asyncio's socket writes 8%, grpc's poller thread 7%, grpc stream writes
  5%, BSON encoding 5%, HMAC 4%, envelope encoding 5%. Transient, by contrast: about 0.7 of a core per
  sidecar at 30,000 msg/s and mongod idle. Later (50,000 messages, CPU per message from /proc, 3 runs each):
  filling delivery and receive batches in place instead of copying each message in took orders from 26.6
  to 23.4 us and billing from 26.1 to 25.1 us per message; then no task per answered send batch, no dict
  for absent headers, addresses that keep their text and hash, and histograms counted a batch at a time
  (prometheus_client's took 0.55 us per message) brought them to 21.4-22.0 and 23.0-23.6 us, mongod
  14-15 us. With the clients, about 68 us of the 2 cores' 2,000,000 per second: a ceiling near 29,000
  msg/s on this machine. What is left in the receiver is spread thin: grpc's own callbacks 19%, BSON 6%,
  then checks, decoding and de-duplication at 1-3% each.
- **Persistent at 1,000 msg/s** (the latency run): orders 0.53, billing 0.49, mongod 0.44, the probe's
  client 0.32: about 1.8 of the 2 cores, so every hop queues for a core. At that rate each message is a
  batch of its own: about 0.45 ms of CPU per message in each sidecar, most of it in grpcio's native code
  (py-spy: the event loop's callbacks into grpc 30%, grpc's completion-queue poller thread 24%, `select`
  30%), and mongod spends 0.23 ms of CPU on a single-document insert, 0.5 ms with the journal flush a
  majority write waits for. Swapping the event loop for uvloop changed neither rate nor CPU (measured).
  gRPC core's iomgr engine instead of EventEngine (the sidecar's default now, docs/sidecar.md
  `GRPC_EXPERIMENTS`) does the socket I/O on the poller thread, one thread hand-off fewer per event:
  transient, 0.41/0.38 ms of CPU per message (orders/billing) became 0.34/0.33 and the p99 went from
  2.1-2.8 ms to 1.9-2.3 ms; persistent, 0.52 -> 0.48 ms in orders and the latency about the same. Its
  cost: unary `Send` with 64 calls in flight, transient, 12% fewer msg/s (5 alternating runs each, medians
  1,765 and 2,005 in that probe; compare the unary rows with an earlier run's). Timing
  the majority inserts themselves at 1,000 msg/s: p50 1.75 ms (outbox) and 1.80 ms (inbox), p99 4.6 and
  5.3 ms, two of them in sequence, each also waiting for the write before it (one durable writer per
  side; two or three writers measured worse, p50 9.4-13.5 ms, since more writes mean more journal
  flushes): that, on a machine this busy, is the persistent p50 of 7-8 ms.
- **Persistent at 1,000 msg/s, where the time goes** (later; stages timed inside the sidecars, 10,000-20,000
  messages): the sender's write 3.5 ms p50 (an `insert_many` alone 2.2 ms, the rest waiting for the write
  before it), then delivery, the receiver's write 3.1 ms p50 (p99 8-14 ms; `insert_many` alone p99 8-10
  ms), then 0.8 ms to the application. Delivery now starts while the sender's write is in flight
  (docs/sidecar.md): time to the first send 4.4 -> 0.1 ms p50. In the latency scenario, 3 alternating runs
  each: p50 9.06/8.63/7.74 -> 6.70/6.20/6.04 ms; p99 19.3/25.2/18.7 -> 20.8/21.7/20.3 ms, unchanged: the tail
  is the receiver's majority write, whose own p99 under this load is above the 4 ms target. A full run's
  p99 can be far worse than these (50 ms in one) when mongod stalls. `--journalCommitInterval 2` instead of
  10 made no difference (2 runs each).
- **Transient at 1,000 msg/s**: acknowledging every 5 ms with `Ack` calls cost the receiving sidecar about a
  tenth of its CPU per message; on an `AckStream` it took 0.316-0.324 instead of 0.353-0.357 ms (orders
  0.342-0.349 against 0.357-0.364) and the p99 went 2.32 -> 1.91-2.06 ms (2 runs each). What is left is
  mostly grpcio's: py-spy finds our code (with what it calls) in a third of the receiver's busy event-loop
  samples, grpc's callbacks and the loop itself in the rest.
- **Tails**: full garbage collections of the sidecar's ~600 modules' objects took 20-35 ms mid-run until the
  sidecar froze them at start (`gc.freeze`); majority writes stalled 100-110 ms, both sidecars' at once, a few
  times a minute, until mongod flushed its journal every 10 ms instead of 100 (docs/deploy.md).
- **What is left of the transient tail is this machine's** (2026-12-05; a probe client sending 6,000-12,000
  messages at 1,000 msg/s over `SendStream` and receiving them, with the arrival in each sidecar's API timed):
  p50 1.0-1.1 ms, p99 3.0-4.4 ms. Every message over 5 ms fell into a pause 5-14 ms long, about every 1.05 s,
  in whichever hop ran then (client to sender, sender to receiver, receiver to client). Not the client's
  garbage collector (disabled: the same), nor mongod's TTL monitor or diagnostic capture (both off: the same),
  nor a long callback in a sidecar (none over 1.5 ms). The CPU time of every thread on the machine, sampled
  every 10 ms (`/proc/*/task/*/schedstat`), has one thread with bursts at that period: the sandbox's own agent
  (PID 1, no part of GoQ or of the benchmark) takes 5-8 ms of CPU about every 1.05 s, with or without a command
  of ours running; on 2 cores already 1.3 busy, that preempts one of the hops (period matched, not each pause
  timed against each burst). A process sleeping 0.5 ms in a loop on the idle
  machine saw two such pauses (4-5 ms) in 6 s.

### Per-message APIs: CPU per message of the sending sidecar (2026-12-05)

Not regenerated by the command. gRPC unary `Send` and REST `POST /v1/messages` (JSON, base64 payload), 1 KiB,
64 calls in flight (the benchmark's clients), 3,000 messages a run; the sending sidecar's CPU from /proc. The
machine was shared with other heavy test runs (load average 4-20 on 2 cores), so each configuration ran as a
system of its own, all started at once and measured in turn, run after run (6 runs each after a warm-up):
median and spread, in us per message.

| API, persistence | before | after, asyncio loop (the default) | after, uvloop (`GOQ_EVENT_LOOP=uvloop`) |
|---|---|---|---|
| unary, persistent | 418 (357-567) | 467 (393-503) | 418 (333-500) |
| unary, transient | 472 (400-513) | 463 (377-503) | 453 (397-530) |
| REST, persistent | 350 (283-387) | 315 (277-340) | 287 (263-353) |
| REST, transient | 237 (217-287) | 223 (207-270) | 212 (193-257) |

What changed: a JSON send's payload is checked by strict base64 decoding instead of also matching the
pattern first (18.7 -> 6.0 us per 1 KiB payload, the same strings accepted), one JSON decoder serves every
body, the application port wraps its methods for undecodable requests once at registration instead of
through an interceptor on every call (a bare unary call 232 -> 222 us, 8 runs each), and the sidecar can run
on uvloop (opt-in: `GOQ_EVENT_LOOP=uvloop`, the extra `goq-sidecar[uvloop]`). uvloop, in three such comparisons
against the asyncio loop: persistent REST 3%, 9% and 8% less,
persistent unary 16%, 10% and 0% less, transient within the noise either way; on bare servers with nothing
behind them, no difference.

Why not half: most of a per-message call is the transport's, not the sidecar's. A bare grpc.aio server whose
`Send` answers at once took 220-265 us of CPU per unary call here (iomgr or EventEngine alike; uvloop
changes nothing), and a bare REST server (the sidecar's h11 server, the JSON send decoded, nothing stored)
245 us per request, of which py-spy puts 28% in the socket `send` of the answer (loopback TCP does the
receiver's work in the sender's system call), 27% in h11, 16% in asyncio's streams and timeouts, 14% in the
server's own code and 9% in JSON and base64. The rest of a unary or REST send is what small batches cost:
single sends arriving one at a time make groups of 1-4 messages (1.3 transient, about 4 persistent, counted
in the engine), so each delivery, store write and delete is paid for a few messages, where a stream pays it
for 500 (24 us per message). What could go further: grpcio's synchronous server took 135 us per bare unary
call (212 us bridged to the event loop), and a C HTTP parser (httptools) would replace most of h11's share.

Later the same day, the REST server's timers: a JSON send went through six or seven `asyncio.timeout` scopes
(its head, each body event, the answer's drain, the end of its body), though head and body had arrived in one
segment and the answer left in one write. Only a wait for the client is timed now (the timeouts mean what they
meant): persistent REST JSON, 1 KiB, 20,000 messages, 3 interleaved runs each, 219-237 us of the sending
sidecar's CPU per message (median 228) against 250-270 (median 256): 11% less. What py-spy then finds in that
sidecar: the socket `send` of the answer 15%, h11 about 13%, the store's group commits 11%, delivery 4%.
"""


TLS_COST = """\
Measured on 2026-12-05 with `bench/run.py --quick --systems goq --scenarios throughput,latency --apis
stream,unary`, plaintext and `--peer-tls` interleaved, two runs each (5,000 x 1 KiB and 500 x 64 KiB per run,
5 s at 1,000 msg/s), on a quiet machine (load average 0.9). With `--peer-tls` each sidecar holds a
certificate from the same CA, as the operator issues them, and every delivery crosses TLS with both
sides verified (the runner prints each sidecar's SPIFFE ID).

| figure (two runs each) | plaintext | mutual TLS |
|---|---:|---:|
| persistent, gRPC stream, 1 KiB msg/s | 16,337 / 18,849 | 18,460 / 14,902 |
| persistent, gRPC unary, 1 KiB msg/s | 1,717 / 1,909 | 1,795 / 1,580 |
| transient, gRPC stream, 1 KiB msg/s | 15,529 / 28,134 | 27,039 / 22,245 |
| transient, gRPC unary, 1 KiB msg/s | 1,664 / 1,430 | 1,480 / 1,663 |
| persistent, gRPC stream, 64 KiB MB/s | 65.5 / 57.3 | 67.2 / 60.0 |
| transient, gRPC stream, 64 KiB MB/s | 97.3 / 109.1 | 101.9 / 89.0 |
| persistent, gRPC stream, p50 / p99 ms at 1,000 msg/s | 10.1 / 113.6, 10.7 / 23.0 | 9.1 / 19.3, 12.5 / 42.9 |
| transient, gRPC stream, p50 / p99 ms at 1,000 msg/s | 1.21 / 3.73, 1.32 / 5.22 | 1.24 / 3.87, 1.25 / 5.38 |
| sending sidecar CPU s per 10k msgs, persistent stream / unary | 0.36 / 4.50, 0.28 / 3.92 | 0.30 / 3.98, 0.34 / 4.50 |
| idle RSS per sidecar, MB | 58 | 61 |

The cost of mutual TLS is below this machine's run-to-run spread in every rate, latency and CPU row (two
plaintext runs differ by up to 45 %); what it measurably costs is 3 MB of memory per sidecar (the OpenSSL
contexts and the certificate files it follows). Connections are long-lived, so the handshake is paid once per
peer replica, not per message; what each message adds is the symmetric encryption of its bytes, small beside
the Python work per message.
A larger run on a quiet machine would narrow the spread; it would not change the order of magnitude.
"""


ONE_COPY = """\
Not regenerated by the command (2026-12-05; `bench/floor.py --handoff --variants copy,digest-by-index,head
--runs 3 --latency-seconds 10`, then the same with `--history-window 0`). Issue 21 asked for one durable copy
of each persistent message where sender and receiver share a MongoDB: the receiver taking over the sender's
stored message by a small update instead of storing its own copy. Before building it (it changes the
sender's finishing, withdrawal, adoption and recovery), MongoDB alone made its writes beside today's two
copies: today's copy; the receiver's update of the sender's document that holds the bodies; and the bodies
apart, in a document never updated, with a small head document that the receiver's update and the finisher
change. 50,000 x 1 KiB and 5,000 x 64 KiB per run, variants interleaved in each of 3 rounds, medians; the
window is mongod's `minSnapshotHistoryWindowInSeconds`, latency at 1,000 msg/s of 1 KiB:

| window | variant | 1 KiB msg/s | 64 KiB msg/s | MongoDB wrote, 64 KiB | mongod CPU s/10k, 64 KiB | p50 / p99 ms |
|---|---|---:|---:|---:|---:|---:|
| 5 (MongoDB's default) | two copies (today) | 43,670 | 751 | 6.27x | 13.1 | 1.95 / 7.6 |
| 5 | one copy, update of the document with the bodies | 29,799 | 1,014 | 5.00x | 7.5 | 2.09 / 7.3 |
| 5 | one copy, bodies apart | 31,790 | 1,279 | 3.12x | 5.7 | 2.04 / 6.1 |
| 0 (GoQ's setting, docs/deploy.md) | two copies (today) | 62,125 | 1,705 | 4.19x | 4.0 | 1.96 / 4.0 |
| 0 | one copy, update of the document with the bodies | 36,493 | 1,728 | 2.39x | 3.4 | 1.96 / 3.7 |
| 0 | one copy, bodies apart | 37,785 | 1,798 | 2.04x | 2.6 | 2.01 / 4.5 |

With the history window at 0 the one copy halves what MongoDB writes per 64 KiB message and takes a third
of mongod's CPU off, but the rate stays within today's spread at 64 KiB (today's three rounds: 1,578-2,173
msg/s), falls by 40% at 1 KiB (marking 500 members and their keys in one update costs mongod more than
inserting their copy), and the latency is the same: the receiver still waits for one majority write. Most of
what the one copy gained with MongoDB's default window was the history store's writes, which the window
setting removes for every variant. So it is not built: it would move none of this page's rate or latency
targets on this machine, for the riskiest change to the delivery path. Where MongoDB's disks or CPU are the
limit of a deployment, the bytes it saves would count; the design and these variants are kept for that.
1.3x of the payload is out of reach for any replicated insert of it: the journal and the oplog each hold
the payload once.
"""

HYGIENE = """\
Every GoQ consumer drains before it closes (reads on until nothing came for 0.5 s, acknowledges all it holds)
and reports the leases its sidecar still holds; before each phase the runner asks both sidecars for `Stats`
and waits until nothing is queued or leased. What it found in this run:
"""


CAVEATS = """\
- One machine, shared: the load average was {load} when the run started, {runs} run(s) per system. On a
  busy machine tail latencies (p99 and beyond) are dominated by scheduling, not by the systems; compare rows
  of the same run, not runs with each other.
- The clients are Python (pika, nats-py on uvloop, grpcio, aiohttp) for every system, so a peer's figure includes
  its Python client's cost, as GoQ's includes its own. RabbitMQ's and NATS's own tools (PerfTest, `nats
  bench`) would report more for the brokers themselves.
- GoQ runs three processes (two sidecars and mongod) on the 2 cores where a peer runs one broker; each
  GoQ message crosses two Python processes and, when persistent, is written to MongoDB twice.
- The bare gRPC hop moves many messages per call as one raw-bytes blob in throughput runs: no per-message
  framing, storage or acknowledgement. It is a ceiling for a Python hop, not a peer GoQ could match.
"""


class ResultsError(Exception):
    """Saved results that cannot serve what they were given for; the message says what was wrong and what is
    needed instead."""


REPLICA_SET = "replica-set"
REPLICA_SET_TITLE = "GoQ on a three-member replica set"
PERSISTENT = "GoQ persistent"
KIB, LARGE = "1024", "65536"


def read_results(path: Path) -> dict[str, Any]:
    """A results file written by bench/run.py (``latest.json`` or ``run-*.json``)."""
    try:
        found = json.loads(path.read_text())
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ResultsError(f"{path} is not JSON ({exc}): give a results file that bench/run.py wrote") from None
    if not isinstance(found, dict) or not isinstance(found.get("settings"), dict) or "systems" not in found:
        raise ResultsError(f"{path} is not a results file of bench/run.py: it has no 'settings' or 'systems'")
    return found


def persistent_rows(results: dict[str, Any]) -> list[str]:
    """The run's GoQ persistent rows that measured something (a throughput or latency run)."""
    return [
        name
        for name, entry in results.get("systems", {}).items()
        if name.startswith(PERSISTENT) and (any(entry.get("throughput", {}).values()) or entry.get("latency"))
    ]


def check_replica_set(results: dict[str, Any]) -> list[str]:
    """Refuse what is not a GoQ run on three members; its GoQ persistent rows otherwise."""
    store = results.get("settings", {}).get("mongodb", "single")
    if store != REPLICA_SET:
        raise ResultsError(
            f"the replica-set results were measured with --mongodb {store}, not on a replica set: give the"
            " latest.json of a run made with `bench/run.py --systems goq --mongodb replica-set`"
        )
    rows = persistent_rows(results)
    if not rows:
        raise ResultsError(
            "the replica-set results have no GoQ persistent row with figures: run `bench/run.py --mongodb"
            " replica-set` with --systems goq and the throughput or latency scenario"
        )
    return rows


def shared_rows(single_rows: list[str], single_store: str, replica_set: dict[str, Any]) -> list[str]:
    """The GoQ persistent rows to show side by side: measured on one mongod and on the replica set."""
    if single_store != "single":
        raise ResultsError(
            f"the main run's GoQ store is --mongodb {single_store}: the replica-set section sets a run on one"
            " mongod (--mongodb single, the default) beside the replica-set one"
        )
    theirs = check_replica_set(replica_set)
    shared = [name for name in single_rows if name in theirs]
    if not shared:
        raise ResultsError(
            f"no GoQ persistent row is in both runs: one mongod has {single_rows or 'none'}, the replica set"
            f" {theirs}; measure the same --apis in both"
        )
    return shared


def _stored(entry: dict[str, Any], size: str) -> float | None:
    """Median MongoDB bytes written per message of the throughput runs, as a multiple of the payload."""
    runs = [
        r["mongodb_bytes_per_msg"] for r in entry.get("throughput", {}).get(size, []) if r.get("mongodb_bytes_per_msg")
    ]
    return statistics.median(runs) / int(size) if runs else None


def _figures(entry: dict[str, Any]) -> dict[str, float | None]:
    throughput, latency = entry.get("throughput", {}), entry.get("latency") or {}
    return {
        "small": throughput_row(throughput[KIB])["msgs_per_s"] if throughput.get(KIB) else None,
        "large": throughput_row(throughput[LARGE])["mb_per_s"] if throughput.get(LARGE) else None,
        "p50": float(latency["p50_ms"]) if "p50_ms" in latency else None,
        "p99": float(latency["p99_ms"]) if "p99_ms" in latency else None,
        "stored_small": _stored(entry, KIB),
        "stored_large": _stored(entry, LARGE),
    }


FIGURES = (  # key, label, format of a cell
    ("small", "1 KiB msg/s", "{:,.0f}"),
    ("large", "64 KiB MB/s", "{:.1f}"),
    ("p50", "p50 ms at 1,000 msg/s", "{:.2f}"),
    ("p99", "p99 ms at 1,000 msg/s", "{:.2f}"),
    ("stored_small", "MongoDB wrote per 1 KiB message, x payload", "{:.2f}x"),
    ("stored_large", "MongoDB wrote per 64 KiB message, x payload", "{:.2f}x"),
)


def _cell(value: float | None, fmt: str) -> str:
    return fmt.format(value) if value is not None else "-"


def _replica_set_reading(name: str, one: dict[str, float | None], three: dict[str, float | None]) -> str | None:
    parts = []
    if one["small"] and three["small"] is not None:
        parts.append(f"{three['small'] / one['small']:.0%} of one mongod's 1 KiB rate")
    if one["large"] and three["large"] is not None:
        parts.append(f"{three['large'] / one['large']:.0%} of its 64 KiB MB/s")
    if None not in (one["p50"], one["p99"], three["p50"], three["p99"]):
        parts.append(
            f"p50 / p99 at 1,000 msg/s {three['p50']:.2f} / {three['p99']:.2f} ms against"
            f" {one['p50']:.2f} / {one['p99']:.2f} ms"
        )
    if one["stored_large"] is not None and three["stored_large"] is not None:
        parts.append(
            f"MongoDB wrote {three['stored_large']:.2f}x the 64 KiB payload per message, the three members together,"
            f" against {one['stored_large']:.2f}x on one"
        )
    return f"- {name}, three members: {'; '.join(parts)}." if parts else None


def replica_set_section(results: dict[str, Any], replica_set: dict[str, Any]) -> list[str]:
    """The GoQ persistent rows of a run on three mongod members beside the same rows on one mongod."""
    rows = shared_rows(persistent_rows(results), results["settings"].get("mongodb", "single"), replica_set)
    settings = replica_set["settings"]
    counts = settings.get("counts", {})
    lines = [
        f"### {REPLICA_SET_TITLE}",
        "",
        "The GoQ persistent rows of a second run, `bench/run.py --mongodb replica-set` (finished"
        f" {replica_set.get('finished', '?')} UTC, load average {replica_set.get('load_average', '?')} at its"
        f" start; {counts.get(KIB, 0):,} x 1 KiB and {counts.get(LARGE, 0):,} x 64 KiB, {settings.get('runs', '?')}"
        " run(s)), beside the same rows of this run on one mongod. Its store is three mongod members on this"
        " machine, as a production store is: a primary and two secondaries, every majority write waiting for a"
        " second member's journal. What MongoDB wrote (data files and journal, from `serverStatus`) is summed"
        " over the three members, each of which keeps a full copy. These are two runs: the machine's load may"
        " have differed between them.",
        "",
        "| GoQ | figure | one mongod | three members | three / one |",
        "|---|---|---:|---:|---:|",
    ]
    readings = []
    for name in rows:
        one, three = _figures(results["systems"][name]), _figures(replica_set["systems"][name])
        for i, (key, label, fmt) in enumerate(FIGURES):
            a, b = one[key], three[key]
            ratio = f"{b / a:.2f}x" if a and b is not None else "-"
            lines.append(f"| {name if i == 0 else ''} | {label} | {_cell(a, fmt)} | {_cell(b, fmt)} | {ratio} |")
        reading_line = _replica_set_reading(name, one, three)
        if reading_line:
            readings.append(reading_line)
    return [*lines, "", *readings, ""] if readings else [*lines, ""]


def _tables(results: dict[str, Any], replica_set: dict[str, Any] | None) -> str:
    """The figures' tables, with the replica-set section right after the floor's place when there is one."""
    section = replica_set_section(results, replica_set) if replica_set is not None else []
    lines: list[str] = []
    for key, table in tables(results, markdown=True).items():
        if table:
            lines += [f"### {TITLES[key]}", "", *table, ""]
        if key == "floor":
            lines += section
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path, plot: bool = True, replica_set: dict[str, Any] | None = None) -> None:
    """docs/benchmarks.md from one run; with ``replica_set``, a run of GoQ on three members shown beside it."""
    settings = results["settings"]
    mode = "`--quick`, as `make bench-quick` runs it" if settings["quick"] else "the full run of `make bench`"
    counts = settings["counts"]
    hygiene = hygiene_lines(results) or ["- nothing: every phase found both sidecars empty, with no lease held."]
    text = [
        "# Benchmarks: GoQ side by side with RabbitMQ, NATS JetStream and a bare gRPC hop",
        "",
        f"Generated by `bench/run.py` ({mode}), finished {results['finished']} UTC. Regenerate with `make bench`"
        " (about 30 minutes) or `make bench-quick` (a few minutes, small counts).",
        f"Throughput: {counts['1024']:,} x 1 KiB and {counts['65536']:,} x 64 KiB per system,"
        f" {settings['runs']} run(s),"
        f" median [min, max]; latency: {settings['latency_seconds']:g} s at a fixed 1,000 msg/s; scale:"
        f" {settings['identities']} identities x {settings['scale_count']:,} messages; backlog:"
        f" {settings['backlog']:,} persistent messages. All on one machine, in one run.",
        "",
        *(["![throughput, latency and memory under a backlog](benchmarks.png)", ""] if plot else []),
        _tables(results, replica_set),
        "## Reading",
        "",
        reading(results),
        "",
        "## What shapes these figures",
        "",
        SHAPES,
        "## Where the sidecars spend their time",
        "",
        PROFILE,
        "## What mutual TLS between the sidecars costs",
        "",
        TLS_COST,
        "## One durable copy per message, measured on the floor first",
        "",
        ONE_COPY,
        "## Phase hygiene",
        "",
        HYGIENE,
        *hygiene,
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
        "Raw figures: `bench/results/latest.json` and the plot `bench/results/benchmarks.png` (not committed;"
        " the plot is copied to `docs/benchmarks.png`).",
        "",
    ]
    path.write_text("\n".join(text))
