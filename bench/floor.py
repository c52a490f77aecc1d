"""The floor under GoQ's persistent figures: MongoDB alone doing the writes GoQ makes for each message.

A persistent message costs two majority writes in sequence (the sender stores it before it answers, the
receiver stores it before it acknowledges: docs/sidecar.md, the delivery promise) and two background
writes (the sender's delete after delivery, the receiver's tombstone after the application's ack), each
for a batch's messages in one document, as GoQ stores them (docs/sidecar.md, "MongoDB layout"). Here one
process makes exactly those writes with two clients (one per "sidecar") against a mongod started as the
GoQ runs start theirs, and nothing else: no gRPC, no signing, no sidecar process. What GoQ measures
above these figures is the cost of its own processes; below them no design with this store can go.

    python bench/floor.py [--count N] [--large-count N] [--latency-seconds S]
"""

import argparse
import asyncio
import datetime
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from goq_system import MONGO_CACHE_GB
from procs import cpu_seconds
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from stats import latency_summary

from goq.devenv.mongo import MongoServer

Doc = dict[str, Any]
BATCH_BYTES = 1024 * 1024  # what one GoQ delivery batch carries at most
BATCH_COUNT = 500  # the benchmark producers' batch of 1 KiB messages
LINGER = 0.025  # GoQ's background writes wait this long to be written together


class Side:
    """One sidecar's share: its own client, a durable collection and the same one for background writes."""

    def __init__(self, uri: str, name: str) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(uri)
        db = self.client["floor"]
        self.durable: AsyncCollection[Doc] = db.get_collection(name, write_concern=WriteConcern(w="majority"))
        self.background: AsyncCollection[Doc] = db.get_collection(name, write_concern=WriteConcern(w=1))


def outbox_document(first: int, count: int, size: int) -> Doc:
    """A batch of ``count`` messages as the sending sidecar stores it: one document, its members in ``m``."""
    body = os.urandom(size)
    members = [
        {"i": f"m{first + i}", "d": "billing", "c": 0.0, "b": body, "k": "k1", "s": b"s" * 32} for i in range(count)
    ]
    return {"_id": f"g{first}", "h": "bench", "m": members}


def inbox_document(sent: Doc) -> Doc:
    """The same batch as the receiving sidecar stores it: with its de-duplication keys (``ks``)."""
    members = [{"k": f"orders|{m['i']}", "r": 0.0, "dl": 0, "b": m["b"], "ki": "k1", "s": m["s"]} for m in sent["m"]]
    return {"_id": sent["_id"], "h": "bench", "st": "r", "ks": [m["k"] for m in members], "m": members}


async def cleanup(sender: Side, receiver: Side, ids: list[str]) -> None:
    """The two background writes: the sender deletes what was delivered, the receiver leaves tombstones."""
    await asyncio.gather(
        sender.background.delete_many({"_id": {"$in": ids}}),
        receiver.background.update_many(
            {"_id": {"$in": ids}}, {"$set": {"st": "x", "t": datetime.datetime.now(datetime.UTC)}, "$unset": {"m": ""}}
        ),
    )


async def latency(uri: str, seconds: float, rate: float = 1000.0) -> dict[str, float]:
    """Both durable writes of one 1 KiB message at a time, at ``rate``; background writes batched as GoQ's."""
    sender, receiver = Side(uri, "outbox"), Side(uri, "inbox")
    pending: list[str] = []
    background: set[asyncio.Task[None]] = set()
    took: list[float] = []
    flushed = time.perf_counter()
    start = time.perf_counter()
    for i in range(int(seconds * rate)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        began = time.perf_counter()
        doc = outbox_document(i, 1, 1024)
        await sender.durable.insert_one(doc)
        await receiver.durable.insert_one(inbox_document(doc))
        took.append((time.perf_counter() - began) * 1000)
        pending.append(doc["_id"])
        if time.perf_counter() - flushed >= LINGER:
            task = asyncio.ensure_future(cleanup(sender, receiver, pending))
            background.add(task)
            task.add_done_callback(background.discard)
            pending, flushed = [], time.perf_counter()
    await asyncio.gather(*background)
    await asyncio.gather(sender.client.close(), receiver.client.close())
    return latency_summary(took[len(took) // 10 :])  # as the end-to-end runs, after a warm-up


async def throughput(uri: str, count: int, size: int) -> float:
    """Messages per second through both durable writes and both background writes, pipelined like the
    sidecars: the receiver stores one batch while the sender stores the next."""
    sender, receiver = Side(uri, "outbox"), Side(uri, "inbox")
    per_batch = max(1, min(BATCH_COUNT, BATCH_BYTES // size))
    handover: asyncio.Queue[Doc | None] = asyncio.Queue(maxsize=8)

    async def send() -> None:
        for first in range(0, count, per_batch):
            batch = outbox_document(first, min(per_batch, count - first), size)
            await sender.durable.insert_one(batch)
            await handover.put(batch)
        await handover.put(None)

    async def receive() -> None:
        while (batch := await handover.get()) is not None:
            await receiver.durable.insert_one(inbox_document(batch))
            await cleanup(sender, receiver, [batch["_id"]])

    start = time.perf_counter()
    await asyncio.gather(send(), receive())
    took = time.perf_counter() - start
    await asyncio.gather(sender.client.close(), receiver.client.close())
    return count / took


async def fresh(server: MongoServer, measure: Callable[[str], Awaitable[Any]]) -> Any:
    """Run ``measure`` on empty collections, so that no run reads another's leftovers."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(server.uri)
    await client.drop_database("floor")
    # GoQ's inbox indexes: de-duplication keys (one entry per message), and the expiry of tombstones.
    inbox = client["floor"]["inbox"]
    await inbox.create_index("ks", unique=True, partialFilterExpression={"ks": {"$exists": True}})
    await inbox.create_index("t", expireAfterSeconds=3600, sparse=True)
    await client.close()
    return await measure(server.uri)


def floor(counts: dict[int, int], runs: int, latency_seconds: float) -> dict[str, Any]:
    """The floor's throughput (median of ``runs``) per size and its latency at 1,000 msg/s, with mongod's CPU."""
    workdir = Path(tempfile.mkdtemp(prefix="goq-bench-floor-"))
    server = MongoServer(workdir / "mongo", cache_gb=MONGO_CACHE_GB)
    try:
        server.start()
        rates = {str(size): _throughput_runs(server, count, size, runs) for size, count in counts.items()}
        return {"throughput": rates, "latency": _latency_run(server, latency_seconds)}
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _mongod_cpu(server: MongoServer) -> float:
    assert server.process is not None
    return cpu_seconds(server.process.pid)


def _throughput_runs(server: MongoServer, count: int, size: int, runs: int) -> dict[str, float]:
    rates, cpu = [], 0.0
    for _ in range(runs):
        before = _mongod_cpu(server)
        rates.append(asyncio.run(fresh(server, functools.partial(throughput, count=count, size=size))))
        cpu = _mongod_cpu(server) - before
    rates.sort()
    median = rates[len(rates) // 2]
    print(f"  MongoDB alone, {size // 1024} KiB: {median:,.0f} msg/s, {median * size / 1e6:.1f} MB/s", flush=True)
    return {
        "msgs_per_s": median,
        "min": rates[0],
        "max": rates[-1],
        "mb_per_s": median * size / 1e6,
        "mongod_cpu_s_per_10k": cpu * 10_000 / count,
    }


def _latency_run(server: MongoServer, seconds: float) -> dict[str, float]:
    before = _mongod_cpu(server)
    summary: dict[str, float] = asyncio.run(fresh(server, functools.partial(latency, seconds=seconds)))
    summary["mongod_cpu_s_per_10k"] = (_mongod_cpu(server) - before) * 10_000 / (seconds * 1000)
    print(f"  MongoDB alone, latency: p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms", flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--large-count", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(floor({1024: args.count, 65536: args.large_count}, args.runs, args.latency_seconds), indent=1))


if __name__ == "__main__":
    main()
