"""The floor under GoQ's persistent figures: MongoDB alone doing the writes GoQ makes for each message.

A persistent message costs two majority writes in sequence (the sender stores it before it answers, the
receiver stores it before it acknowledges: docs/sidecar.md, the delivery promise) and two background
writes (the sender's delete after delivery, the receiver's tombstone after the application's ack), each
for a batch's messages in one document, as GoQ stores them (docs/sidecar.md, "MongoDB layout"). Here one
process makes exactly those writes with two clients (one per "sidecar") against a mongod started as the
GoQ runs start theirs, and nothing else: no gRPC, no signing, no sidecar process. What GoQ measures
above these figures is the cost of its own processes; below them no design with this store can go.

``--handoff`` measures, beside those writes ("copy"), the one-copy handoff of issue 21
(one durable copy per message): the sender's insert as today, then per delivered batch one small
majority update of the sender's document by the receiver ("W2": the members' ``to``, their keys in ``hk``,
the receiver in ``ho``, matched on the member's exact body, or on a 16-byte digest of it), then the
receiver's finishing update that makes the document a tombstone; and ("head") the same with the bodies
apart: the sender inserts a body document that is never updated and a small head document that W2 and the
finisher update (the finisher deletes the body document with it). Variants and sizes are interleaved, each
run on empty collections, with the bytes MongoDB wrote per payload byte (``serverStatus``, as ``run.py``).

    python bench/floor.py [--count N] [--large-count N] [--latency-seconds S]
        [--handoff [--variants copy,head,...] [--history-window S]]
"""

import argparse
import asyncio
import datetime
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import bson
from goq_system import MONGO_CACHE_GB
from procs import cpu_seconds
from pymongo import AsyncMongoClient, DeleteMany, MongoClient, UpdateMany, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from stats import latency_summary, spread

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


def outbox_document(first: int, count: int, size: int, *, digest: bool = False) -> Doc:
    """A batch of ``count`` messages as the sending sidecar stores it: one document, its members in ``m``.
    Every body is its own random bytes, so that compression (journal, blocks) finds no repeats a real
    stream of signed messages would not have; ``digest``: each member also carries ``g``, its body's digest."""
    bodies = os.urandom(size * count)
    members = []
    for i in range(count):
        body = bodies[i * size : (i + 1) * size]
        member = {"i": f"m{first + i}", "d": "billing", "c": 0.0, "b": body, "k": "k1", "s": b"s" * 32}
        if digest:
            member["g"] = body_digest(body)
        members.append(member)
    return {"_id": f"g{first}", "h": "bench", "m": members}


def body_digest(body: bytes) -> bytes:
    """The 16-byte digest a sender would store beside a body for W2's filter (design, open question 2)."""
    return hashlib.blake2b(body, digest_size=16).digest()


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


RECEIVER = "orders|r1"  # the receiving instance W2 names in ``ho`` and ``m.<n>.to.h``
TOMBSTONE_FOR = datetime.timedelta(minutes=15)


class Copy:
    """Today: the receiver stores its own copy (inbox), the sender deletes its document, the receiver leaves
    a tombstone."""

    name = "copy"
    key = "copy"
    """What ``--variants`` calls it."""
    digest = False

    def __init__(self, uri: str) -> None:
        self.sender, self.receiver = Side(uri, "outbox"), Side(uri, "inbox")

    async def store(self, batch: Doc) -> None:
        """The sender's durable write of a batch."""
        await self.sender.durable.insert_one(batch)

    async def receive(self, sent: Doc) -> None:
        await self.receiver.durable.insert_one(inbox_document(sent))

    async def finish(self, ids: list[str]) -> None:
        await cleanup(self.sender, self.receiver, ids)

    async def close(self) -> None:
        await asyncio.gather(self.sender.client.close(), self.receiver.client.close())


class Handoff(Copy):
    """The one-copy handoff: the receiver takes the sender's members by one majority update of the sender's
    document (W2), matched on each member's exact body (``by="body"``) or on its digest (``by="digest"``),
    and finishes the document with one pipeline update (the design's "finisher") after the application's
    acks. The sender writes nothing after its insert (every member answered handed off)."""

    def __init__(self, uri: str, by: str, *, by_index: bool = False) -> None:
        super().__init__(uri)
        self.receiver = Side(uri, "outbox")
        self.by = by
        self.by_index = by_index
        self.name = f"handoff, {by} filter" + (" by index" if by_index else "")
        self.key = by + ("-by-index" if by_index else "")
        self.digest = by == "digest"

    async def receive(self, sent: Doc) -> None:
        w2 = handoff_by_index(sent, self.by) if self.by_index else handoff(sent, self.by)
        result = await self.receiver.durable.update_one(*w2)
        if result.matched_count != 1:
            raise RuntimeError(f"W2 matched {result.matched_count} documents for {sent['_id']}, not 1")

    async def finish(self, ids: list[str]) -> None:
        await self.receiver.background.update_many({"_id": {"$in": ids}}, finisher(RECEIVER))


class HeadHandoff(Handoff):
    """The handoff with the bodies apart: the sender inserts, in one ``insert_many``, a body document (the
    batch's bodies, never updated) and then a small head document (the members without bodies, each with
    its body's digest); W2 and the finisher update only the head, and the finisher deletes the body
    document with it. Why: an update of a document that holds the bodies costs mongod about what their
    insert does, and with the default history window writes their old version to the history store."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri, "digest", by_index=True)
        self.name = "handoff, head and body apart"
        self.key = "head"

    async def store(self, batch: Doc) -> None:
        await self.sender.durable.insert_many(head_and_body(batch))

    async def finish(self, ids: list[str]) -> None:
        await self.receiver.background.bulk_write(
            [
                UpdateMany({"_id": {"$in": ids}}, finisher(RECEIVER)),
                DeleteMany({"_id": {"$in": [body_id(i) for i in ids]}}),
            ]
        )


def body_id(group: str) -> str:
    return f"{group}.b"


def head_and_body(batch: Doc) -> list[Doc]:
    """A batch as two documents, the body first: a head that exists always has its body."""
    bodies = {"_id": body_id(batch["_id"]), "h": batch["h"], "b": [m["b"] for m in batch["m"]]}
    members = [{k: v for k, v in m.items() if k != "b"} for m in batch["m"]]
    return [bodies, {**batch, "m": members}]


def handoff(sent: Doc, by: str) -> tuple[Doc, Doc]:
    """W2 for every member of ``sent``: filter and update. The receiver has each member's id and body from
    the envelope; a digest it computes itself from the body it received."""
    now = datetime.datetime.now(datetime.UTC)
    match: Doc = {"_id": sent["_id"], "wd": {"$exists": False}, "x": {"$nin": [m["i"] for m in sent["m"]]}}
    take: Doc = {}
    for n, member in enumerate(sent["m"]):
        match[f"m.{n}.i"] = member["i"]
        match[f"m.{n}.to.h"] = {"$in": [None, RECEIVER]}  # not taken, or taken by this instance before
        if by == "digest":
            match[f"m.{n}.g"] = body_digest(member["b"])
        else:
            match[f"m.{n}.b"] = member["b"]
        take[f"m.{n}.to"] = {"o": "orders", "h": RECEIVER, "w": "t1", "r": now, "dl": 0, "ki": "k1", "s": member["s"]}
    keys = [f"bench|{m['i']}" for m in sent["m"]]
    return match, {"$set": take, "$addToSet": {"hk": {"$each": keys}, "ho": RECEIVER}}


def handoff_by_index(sent: Doc, by: str) -> tuple[Doc, Doc]:
    """W2 as above, but a filter that reads each field of the members once, as an array, and compares the
    batch's positions of it with what the envelopes carry: one pass over the document. Why: a dotted path
    with a number (``m.17.b``) also matches a field named "17" in any member, so each of the positional
    form's conditions walks the whole array: 500 members cost 500 x 500 steps (~40 ms here). A first
    attempt, one ``$expr`` reading each member by ``$arrayElemAt``, cost as much (~30 ms)."""
    now = datetime.datetime.now(datetime.UTC)
    ids = [m["i"] for m in sent["m"]]
    positions = {"$literal": list(range(len(ids)))}  # a batch may take any members of the document
    field, wants = (
        ("g", [body_digest(m["b"]) for m in sent["m"]]) if by == "digest" else ("b", [m["b"] for m in sent["m"]])
    )

    def at_positions(path: str) -> Doc:
        picked = {"$map": {"input": positions, "in": {"$arrayElemAt": ["$$all", "$$this"]}}}
        return {"$let": {"vars": {"all": path}, "in": picked}}

    same = [
        {"$eq": [at_positions("$m.i"), {"$literal": ids}]},
        {"$eq": [at_positions(f"$m.{field}"), {"$literal": wants}]},
    ]
    taken_by_another = {"i": {"$in": ids}, "to.h": {"$exists": True, "$ne": RECEIVER}}
    match = {
        "_id": sent["_id"],
        "wd": {"$exists": False},
        "x": {"$nin": ids},
        "m": {"$not": {"$elemMatch": taken_by_another}},
        "$expr": {"$and": same},
    }
    take = {
        f"m.{n}.to": {"o": "orders", "h": RECEIVER, "w": "t1", "r": now, "dl": 0, "ki": "k1", "s": m["s"]}
        for n, m in enumerate(sent["m"])
    }
    keys = [f"bench|{i}" for i in ids]
    return match, {"$set": take, "$push": {"hk": {"$each": keys}}, "$addToSet": {"ho": RECEIVER}}


def finisher(instance: str) -> list[Doc]:
    """The receiver's finishing update (design section 3): its taken members join ``x``; ``ho`` keeps the
    instances still holding members; once every member is done the document becomes a tombstone (bodies
    and ``ho`` dropped, ``hk`` kept until ``t``)."""
    mine = {"$filter": {"input": "$m", "cond": {"$eq": ["$$this.to.h", instance]}}}
    ids = {"$map": {"input": "$m", "in": "$$this.i"}}
    holders = {"$filter": {"input": "$m", "cond": {"$and": [
        {"$ne": [{"$ifNull": ["$$this.to", None]}, None]},
        {"$not": [{"$in": ["$$this.i", "$x"]}]},
    ]}}}  # fmt: skip
    done = {"$setIsSubset": [ids, "$x"]}
    expiry = {"$dateAdd": {"startDate": "$$NOW", "unit": "second", "amount": int(TOMBSTONE_FOR.total_seconds())}}
    return [
        {"$set": {"x": {"$setUnion": [{"$ifNull": ["$x", []]}, {"$map": {"input": mine, "in": "$$this.i"}}]}}},
        {"$set": {"ho": {"$setUnion": [{"$map": {"input": holders, "in": "$$this.to.h"}}]}}},
        {"$set": {"t": {"$cond": [done, expiry, "$t"]}, "m": {"$cond": [done, "$$REMOVE", "$m"]}}},
        {"$set": {"ho": {"$cond": [{"$eq": ["$ho", []]}, "$$REMOVE", "$ho"]}}},
    ]


def patterns(uri: str) -> list[Copy]:
    return [
        Copy(uri),
        Handoff(uri, "body"),
        Handoff(uri, "digest"),
        Handoff(uri, "body", by_index=True),
        Handoff(uri, "digest", by_index=True),
        HeadHandoff(uri),
    ]


async def latency(uri: str, seconds: float, rate: float = 1000.0, pattern: str = "copy") -> dict[str, float]:
    """Both durable writes of one 1 KiB message at a time, at ``rate``; background writes batched as GoQ's."""
    way = next(p for p in patterns(uri) if p.name == pattern)
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
        doc = outbox_document(i, 1, 1024, digest=way.digest)
        await way.store(doc)
        await way.receive(doc)
        took.append((time.perf_counter() - began) * 1000)
        pending.append(doc["_id"])
        if time.perf_counter() - flushed >= LINGER:
            task = asyncio.ensure_future(way.finish(pending))
            background.add(task)
            task.add_done_callback(background.discard)
            pending, flushed = [], time.perf_counter()
    await asyncio.gather(*background)
    await way.close()
    return latency_summary(took[len(took) // 10 :])  # as the end-to-end runs, after a warm-up


async def throughput(uri: str, count: int, size: int, pattern: str = "copy") -> float:
    """Messages per second through both durable writes and both background writes, pipelined like the
    sidecars: the receiver stores one batch while the sender stores the next."""
    way = next(p for p in patterns(uri) if p.name == pattern)
    per_batch = max(1, min(BATCH_COUNT, BATCH_BYTES // size))
    handover: asyncio.Queue[Doc | None] = asyncio.Queue(maxsize=8)

    async def send() -> None:
        for first in range(0, count, per_batch):
            batch = outbox_document(first, min(per_batch, count - first), size, digest=way.digest)
            await way.store(batch)
            await handover.put(batch)
        await handover.put(None)

    async def receive() -> None:
        while (batch := await handover.get()) is not None:
            await way.receive(batch)
            await way.finish([batch["_id"]])

    start = time.perf_counter()
    await asyncio.gather(send(), receive())
    took = time.perf_counter() - start
    await way.close()
    return count / took


async def fresh(server: MongoServer, measure: Callable[[str], Awaitable[Any]], handoff: bool = False) -> Any:
    """Run ``measure`` on empty collections, so that no run reads another's leftovers."""
    await asyncio.to_thread(reset, server.uri, handoff)
    return await measure(server.uri)


def reset(uri: str, handoff: bool) -> None:
    """Empty collections with GoQ's indexes; ``handoff``: the outbox's new ones too."""
    with MongoClient[Doc](uri) as client:
        client.drop_database("floor")
        # GoQ's inbox indexes: de-duplication keys (one entry per message), and the expiry of tombstones.
        inbox = client["floor"]["inbox"]
        inbox.create_index("ks", unique=True, partialFilterExpression={"ks": {"$exists": True}})
        inbox.create_index("t", expireAfterSeconds=3600, sparse=True)
        if handoff:
            # The handoff's outbox indexes (design section 3): taken keys, holding receivers, tombstone expiry.
            outbox = client["floor"]["outbox"]
            outbox.create_index("hk", unique=True, partialFilterExpression={"hk": {"$exists": True}})
            outbox.create_index("ho", partialFilterExpression={"ho": {"$exists": True}})
            outbox.create_index("t", expireAfterSeconds=3600, sparse=True)


def written(uri: str) -> int:
    """What mongod has written so far, after writing what it holds dirty (``fsync``): data files and journal,
    as ``GoQSystem.bytes_written`` counts them for the end-to-end runs."""
    with MongoClient[Doc](uri) as client:
        client.admin.command("fsync")
        tiger = client.admin.command("serverStatus")["wiredTiger"]
    return int(tiger["block-manager"]["bytes written"]) + int(tiger["log"]["log bytes written"])


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


def compare(
    counts: dict[int, int],
    runs: int,
    latency_seconds: float,
    history_window: int | None = None,
    variants: list[str] | None = None,
) -> dict[str, Any]:
    """Today's copy beside the handoff (body and digest filters): throughput and MongoDB bytes written per
    payload byte per size, latency at 1,000 msg/s, every variant interleaved with the others in each of
    ``runs`` rounds (a shared machine's load then falls on all alike); median, min and max of the rounds.
    ``history_window``: mongod's ``minSnapshotHistoryWindowInSeconds`` (default 5), the seconds of old
    versions it keeps for snapshot reads; an update of a large document writes its old version there."""
    workdir = Path(tempfile.mkdtemp(prefix="goq-bench-floor-"))
    server = MongoServer(workdir / "mongo", cache_gb=MONGO_CACHE_GB)
    names = [p.name for p in patterns("mongodb://unused") if variants is None or p.key in variants]
    rates: dict[str, dict[str, list[float]]] = {n: {str(s): [] for s in counts} for n in names}
    ratios: dict[str, dict[str, list[float]]] = {n: {str(s): [] for s in counts} for n in names}
    cpus: dict[str, dict[str, list[float]]] = {n: {str(s): [] for s in counts} for n in names}
    tails: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    try:
        server.start()
        if history_window is not None:
            with MongoClient[Doc](server.uri) as client:
                client.admin.command({"setParameter": 1, "minSnapshotHistoryWindowInSeconds": history_window})
        oplog = oplog_entries(server.uri)
        for round_ in range(runs):
            for size, count in counts.items():
                for name in names:
                    reset(server.uri, name != "copy")
                    before, cpu = written(server.uri), _mongod_cpu(server)
                    rate = asyncio.run(throughput(server.uri, count, size, name))
                    cpus[name][str(size)].append((_mongod_cpu(server) - cpu) * 10_000 / count)
                    ratios[name][str(size)].append((written(server.uri) - before) / (count * size))
                    rates[name][str(size)].append(rate)
                    print(
                        f"  round {round_ + 1}, {size // 1024} KiB, {name}: {rate:,.0f} msg/s, "
                        f"{rate * size / 1e6:.1f} MB/s, MongoDB wrote {ratios[name][str(size)][-1]:.2f}x the payload",
                        flush=True,
                    )
            if latency_seconds > 0:
                for name in names:
                    reset(server.uri, name != "copy")
                    tail = asyncio.run(latency(server.uri, latency_seconds, pattern=name))
                    tails[name].append(tail)
                    print(f"  round {round_ + 1}, latency, {name}: p50 {tail['p50_ms']:.2f} ms, "
                          f"p99 {tail['p99_ms']:.2f} ms", flush=True)  # fmt: skip
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result: dict[str, Any] = {"oplog": oplog, "history_window": history_window, "load_after": os.getloadavg()}
    for name in names:
        result[name] = {
            str(size): {
                "msgs_per_s": spread(rates[name][str(size)]),
                "mb_per_s": spread([r * size / 1e6 for r in rates[name][str(size)]]),
                "written_per_payload_byte": spread(ratios[name][str(size)]),
                "mongod_cpu_s_per_10k": spread(cpus[name][str(size)]),
            }
            for size in counts
        }
        if tails[name]:
            result[name]["latency"] = {k: spread([t[k] for t in tails[name]]) for k in ("p50_ms", "p99_ms")}
    return result


def oplog_entries(uri: str) -> dict[str, Any]:
    """The oplog entries of one 16 x 64 KiB batch: the sender's insert, W2 (positional and by-index forms,
    each on a document of its own) and the finisher. W2 is cheap only if its entry is a delta (``$v: 2``)
    of the members' ``to`` and the keys, not the document; the same for the finisher that drops the bodies."""
    reset(uri, True)
    sent, other = outbox_document(0, 16, 65536), outbox_document(100, 16, 65536)
    with MongoClient[Doc](uri) as client:
        outbox = client["floor"].get_collection("outbox", write_concern=WriteConcern(w="majority"))
        oplog = client["local"]["oplog.rs"]
        found: dict[str, Any] = {}
        steps: list[tuple[str, Callable[[], object]]] = [
            ("insert", lambda: outbox.insert_many([sent, other])),
            ("w2", lambda: outbox.update_one(*handoff(sent, "body"))),
            ("w2 by index", lambda: outbox.update_one(*handoff_by_index(other, "body"))),
            ("finisher", lambda: outbox.update_one({"_id": sent["_id"]}, finisher(RECEIVER))),
        ]
        for step, write in steps:
            write()
            entry = next(oplog.find({"ns": "floor.outbox"}).sort("$natural", -1).limit(1))
            shape = entry["o"].get("diff", entry["o"])
            found[step] = {
                "bytes": len(bson.encode(entry)),
                "op": entry["op"],
                "version": entry["o"].get("$v"),
                "fields": sorted(shape)[:6],
            }
            print(f"  oplog, {step}: {found[step]}", flush=True)
        left = outbox.find_one({"_id": sent["_id"]})
        if left is None or "m" in left or "t" not in left:
            raise RuntimeError(f"the finisher left {sent['_id']} not a tombstone: {left}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--large-count", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--handoff", action="store_true", help="today's copy beside the one-copy handoff")
    parser.add_argument(
        "--history-window",
        type=int,
        help="with --handoff: mongod's minSnapshotHistoryWindowInSeconds (default: as goq-devenv starts mongod, 0)",
    )
    parser.add_argument(
        "--variants",
        help="with --handoff: a comma-separated subset of copy,body,digest,body-by-index,digest-by-index,head",
    )
    args = parser.parse_args()
    counts = {1024: args.count, 65536: args.large_count}
    if args.handoff:
        variants = args.variants.split(",") if args.variants else None
        print(json.dumps(compare(counts, args.runs, args.latency_seconds, args.history_window, variants), indent=1))
    else:
        print(json.dumps(floor(counts, args.runs, args.latency_seconds), indent=1))


if __name__ == "__main__":
    main()
