"""Benchmark clients for GoQ, each run as a process of its own: a producer and a consumer.

Producers send over one of the application APIs: ``stream`` (gRPC ``SendStream``, batches of 500), ``unary``
(gRPC ``Send``, up to WINDOW calls at once), ``rest-json`` (``POST /v1/messages`` with a base64 payload) or
``rest-raw`` (the same with an ``application/octet-stream`` body). Consumers receive over ``grpc`` (the
server-streaming ``Receive``, acknowledging every 5 ms in one ``Ack``) or ``rest`` (long-poll
``GET /v1/messages`` and one ``POST .../ack`` per message, as the REST API offers).

Each message's first 16 bytes carry its send time (``time.time()``, a double) and the run's tag, so the consumer
measures end-to-end latency (application -> sidecar -> sidecar -> application) and ignores messages of an
earlier run (acknowledging them). Before it closes, a consumer drains: it keeps reading until nothing has come
for QUIET seconds and acknowledges everything it holds, so no lease outlives it. Results go to stdout as JSON.
"""

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from filler import filler

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc

STAMP = struct.Struct("<d8s")  # send time, then the run's tag: messages of another run are not counted
WINDOW = 64  # unary gRPC calls or REST requests awaiting their answer at once
BATCH = 500  # messages per SendBatch of the streaming producer...
BATCH_BYTES = 1024 * 1024  # ...and at most this many payload bytes (the sidecar takes messages up to 5 MiB)
QUIET = 0.5  # seconds without a message after which a finished consumer closes


def tag_of(run: str) -> bytes:
    """8 bytes that tell one run's messages from every other's (a digest: names may share a prefix)."""
    return hashlib.blake2b(run.encode(), digest_size=8).digest()


def payload(size: int, tag: bytes) -> bytes:
    return STAMP.pack(time.time(), tag) + filler(size - STAMP.size)


async def windowed(count: int, rate: float, one: Callable[[], Awaitable[bool]]) -> int:
    """Run ``one`` ``count`` times, at most WINDOW at once, paced at ``rate`` per second when given."""
    window = asyncio.Semaphore(WINDOW)
    accepted = 0
    start = time.time()

    async def run() -> None:
        nonlocal accepted
        try:
            ok = await one()  # awaited first: ``accepted += await one()`` reads ``accepted`` before the wait
            accepted += ok
        finally:
            window.release()

    tasks: set[asyncio.Task[None]] = set()
    for i in range(count):
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await window.acquire()
        task = asyncio.ensure_future(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return accepted


async def produce_stream(
    target: str,
    to: str,
    count: int,
    size: int,
    persistent: bool,
    rate: float,
    tag: bytes,
    accepted_ids: list[str] | None = None,
) -> int:
    """Send ``count`` messages over ``SendStream``; return how many were accepted, their ids in ``accepted_ids``
    if given."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = queue_manager_pb2_grpc.QueueManagerStub(channel)
        start = time.time()

        async def batches() -> AsyncIterator[pb.SendBatch]:
            step = 1 if rate else max(1, min(BATCH, BATCH_BYTES // size))
            for first in range(0, count, step):
                if rate:
                    delay = start + first / rate - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                n = min(step, count - first)
                messages = [pb.SendRequest(to=to, payload=payload(size, tag), persistent=persistent) for _ in range(n)]
                yield pb.SendBatch(messages=messages)

        accepted = 0
        async for answer in stub.SendStream(batches()):
            ids = [r.accepted.id for r in answer.results if r.WhichOneof("result") == "accepted"]
            accepted += len(ids)
            if accepted_ids is not None:
                accepted_ids.extend(ids)
        return accepted


async def produce_unary(target: str, to: str, count: int, size: int, persistent: bool, rate: float, tag: bytes) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = queue_manager_pb2_grpc.QueueManagerStub(channel)

        async def one() -> bool:
            answer = await stub.Send(pb.SendRequest(to=to, payload=payload(size, tag), persistent=persistent))
            return bool(answer.id)

        return await windowed(count, rate, one)


async def produce_rest(
    url: str, to: str, count: int, size: int, persistent: bool, rate: float, tag: bytes, raw: bool
) -> int:
    import aiohttp  # the sidecar's own dependency: always installed

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=WINDOW)) as session:
        query = {"to": to, "persistent": "true" if persistent else "false"}

        async def one() -> bool:
            body = payload(size, tag)
            if raw:
                request = session.post(
                    f"{url}/v1/messages",
                    data=body,
                    params=query,
                    headers={"Content-Type": "application/octet-stream"},
                )
            else:
                document = {"to": to, "payload": base64.b64encode(body).decode(), "persistent": persistent}
                request = session.post(f"{url}/v1/messages", json=document)
            async with request as response:
                await response.read()
                return response.status == 202

        return await windowed(count, rate, one)


class Arrivals:
    """What a consumer saw: each message of this run once (its id and latency), how many came again (at least
    once allows it), messages of earlier runs, first and last arrival."""

    def __init__(self, count: int, tag: bytes) -> None:
        self.count, self.tag = count, tag
        self.ids: set[str] = set()
        self.latencies: list[float] = []
        self.duplicates = self.stale = 0
        self.start = self.first = self.last = 0.0

    def add(self, message_id: str, body: bytes, now: float) -> None:
        sent, tagged = STAMP.unpack_from(body)
        if tagged != self.tag:
            self.stale += 1
        elif message_id in self.ids:
            self.duplicates += 1
        else:
            self.ids.add(message_id)
            self.latencies.append(now - sent)
            self.first = self.first or now
            self.last = now

    @property
    def done(self) -> bool:
        return len(self.latencies) >= self.count

    def result(self) -> dict[str, Any]:
        return {
            "received": len(self.latencies),
            "duplicates": self.duplicates,
            "stale": self.stale,
            "start": self.start,
            "first": self.first,
            "last": self.last,
            "latencies": self.latencies,
        }


def say_ready() -> None:
    print("ready", flush=True)  # the runner starts the producer only now


async def consume_grpc(
    target: str,
    arrivals: Arrivals,
    within: float,
    size: int,
    ready: Callable[[], None] = say_ready,
    stop: asyncio.Event | None = None,
) -> int:
    """Receive over the gRPC stream until ``count`` arrived (or ``stop`` is set), drain, acknowledge; return
    leases left behind."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = queue_manager_pb2_grpc.QueueManagerStub(channel)
        await channel.channel_ready()
        # A batch must stay under gRPC's 4 MiB default for received messages: the sidecar counts messages,
        # not bytes, so a consumer of large messages asks for fewer at a time.
        max_batch = max(1, min(1000, BATCH_BYTES // size))
        stream = stub.Receive(pb.ReceiveRequest(max_in_flight=5000, max_batch=max_batch))
        arrivals.start = time.time()
        ready()
        unacked: list[str] = []

        closing = False

        async def acknowledge() -> None:
            """Acknowledge what arrived every 5 ms, in one message on the ack stream (as a consumer's
            multiple-ack would)."""
            acks = stub.AckStream()
            while not closing or unacked:
                await asyncio.sleep(0.005)
                if unacked:
                    ids = list(unacked)
                    unacked.clear()
                    await acks.write(pb.AckRequest(ids=ids))
                    await acks.read()
            await acks.done_writing()

        done, arrived = asyncio.Event(), asyncio.Event()

        async def read() -> None:
            while (batch := await stream.read()) is not grpc.aio.EOF:
                now = time.time()
                arrived.set()
                for m in batch.messages:
                    arrivals.add(m.id, m.payload, now)
                unacked.extend(m.id for m in batch.messages)
                if arrivals.done:
                    done.set()

        acker = asyncio.ensure_future(acknowledge())
        reader = asyncio.ensure_future(read())
        finished = asyncio.ensure_future(done.wait())
        stopped = asyncio.ensure_future((stop or asyncio.Event()).wait())
        await asyncio.wait({finished, reader, stopped}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        stopped.cancel()
        if reader.done() and not done.is_set():
            reader.result()  # the stream failed: say why rather than wait
        # Drain: whatever the stream still hands out (a redelivery, a message of an earlier run) is read and
        # acknowledged, so that closing the stream leaves no lease behind for the next consumer to wait out.
        with contextlib.suppress(TimeoutError):
            while not reader.done():
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), QUIET)
        stream.cancel()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            await reader
        closing = True
        await acker
        stats = await stub.Stats(pb.StatsRequest())
        return int(stats.in_flight)


async def consume_rest(url: str, target: str, arrivals: Arrivals, within: float) -> int:
    """Long-poll receive and acknowledge each answer's messages in one request (up to WINDOW at once) until
    done, then drain."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=WINDOW + 1)) as session:
        async with session.get(f"{url}/v1/stats") as response:
            await response.read()
        arrivals.start = time.time()
        say_ready()
        window = asyncio.Semaphore(WINDOW)
        acks: set[asyncio.Task[None]] = set()

        async def ack(ids: list[str]) -> None:
            try:
                async with session.post(f"{url}/v1/messages/ack", json={"ids": ids}) as response:
                    await response.read()
            finally:
                window.release()

        async def poll(wait: float) -> int:
            async with session.get(f"{url}/v1/messages", params={"max": "1000", "wait": str(wait)}) as response:
                answer = await response.json()
            now = time.time()
            for m in answer["messages"]:
                arrivals.add(m["id"], base64.b64decode(m["payload"]), now)
            if answer["messages"]:
                await window.acquire()
                task = asyncio.ensure_future(ack([m["id"] for m in answer["messages"]]))
                acks.add(task)
                task.add_done_callback(acks.discard)
            return len(answer["messages"])

        deadline = time.time() + within
        while not arrivals.done and time.time() < deadline:
            await poll(1.0)
        while await poll(QUIET):  # drain, as the gRPC consumer does
            pass
        if acks:
            await asyncio.gather(*acks)
    async with grpc.aio.insecure_channel(target) as channel:
        stats = await queue_manager_pb2_grpc.QueueManagerStub(channel).Stats(pb.StatsRequest())
        return int(stats.in_flight)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["produce", "consume"])
    parser.add_argument("--api", choices=["stream", "unary", "rest-json", "rest-raw", "grpc", "rest"], required=True)
    parser.add_argument("--target", required=True, help="the sidecar's gRPC address")
    parser.add_argument("--rest", default="", help="the sidecar's REST base URL")
    parser.add_argument("--to", default="billing")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--persistent", action="store_true")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--within", type=float, default=300.0)
    parser.add_argument("--queue", default="bench", help="the run's name: a digest of it tags the messages")
    args = parser.parse_args()
    tag = tag_of(args.queue)
    result: dict[str, Any]
    if args.role == "produce":
        start = time.time()
        common = (args.to, args.count, args.size, args.persistent, args.rate, tag)
        if args.api == "stream":
            accepted = asyncio.run(produce_stream(args.target, *common))
        elif args.api == "unary":
            accepted = asyncio.run(produce_unary(args.target, *common))
        else:
            accepted = asyncio.run(produce_rest(args.rest, *common, raw=args.api == "rest-raw"))
        result = {"accepted": accepted, "start": start, "end": time.time()}
    else:
        arrivals = Arrivals(args.count, tag)
        if args.api == "rest":
            left = asyncio.run(consume_rest(args.rest, args.target, arrivals, args.within))
        else:
            left = asyncio.run(consume_grpc(args.target, arrivals, args.within, args.size))
        result = {**arrivals.result(), "left_in_flight": left}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
