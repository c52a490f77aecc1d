"""Benchmark clients, each run as a process of its own: a producer and a consumer for GoQ.

Each message's first 8 bytes carry its send time (``time.time()``, a double), so the consumer measures
end-to-end latency: application -> sidecar -> sidecar -> application. Results go to stdout as JSON.
"""

import argparse
import asyncio
import contextlib
import json
import struct
import sys
import time

import grpc

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc

STAMP = struct.Struct("<d8s")  # send time, then the run's tag: messages of another run are not counted


def tag_of(run: str) -> bytes:
    return run.encode()[:8].ljust(8, b"-")


def payload(size: int, tag: bytes) -> bytes:
    return STAMP.pack(time.time(), tag) + b"." * (size - STAMP.size)


async def produce(
    target: str, to: str, count: int, size: int, persistent: bool, rate: float, batch: int, tag: bytes
) -> dict[str, float]:
    """Send ``count`` messages: as fast as the sidecar takes them, or paced at ``rate`` per second."""
    channel = grpc.aio.insecure_channel(target)
    stub = queue_manager_pb2_grpc.QueueManagerStub(channel)
    start = time.time()

    async def batches():  # type: ignore[no-untyped-def]
        if rate:
            for i in range(count):
                delay = start + i / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield pb.SendBatch(messages=[pb.SendRequest(to=to, payload=payload(size, tag), persistent=persistent)])
        else:
            for first in range(0, count, batch):
                n = min(batch, count - first)
                yield pb.SendBatch(
                    messages=[
                        pb.SendRequest(to=to, payload=payload(size, tag), persistent=persistent) for _ in range(n)
                    ]
                )

    accepted = 0
    async for answer in stub.SendStream(batches()):
        accepted += sum(r.WhichOneof("result") == "accepted" for r in answer.results)
    end = time.time()
    await channel.close()
    return {"accepted": accepted, "start": start, "end": end}


async def consume(target: str, count: int, within: float, tag: bytes) -> dict[str, object]:
    """Receive and acknowledge ``count`` messages; report first and last arrival and every latency."""
    channel = grpc.aio.insecure_channel(target)
    stub = queue_manager_pb2_grpc.QueueManagerStub(channel)
    latencies: list[float] = []
    stale = 0  # messages of an earlier run (redelivered or duplicated): acknowledged, not counted
    first = last = 0.0
    unacked: list[str] = []
    await channel.channel_ready()
    stream = stub.Receive(pb.ReceiveRequest(max_in_flight=5000, max_batch=1000))
    print("ready", flush=True)  # the runner starts the producer only now

    async def acknowledge() -> None:
        """Acknowledge what arrived every 5 ms, in one call (as a consumer's multiple-ack would)."""
        while True:
            await asyncio.sleep(0.005)
            if unacked:
                ids = list(unacked)
                unacked.clear()
                await stub.Ack(pb.AckRequest(ids=ids))

    async def run() -> None:
        nonlocal first, last, stale
        async for batch in stream:
            now = time.time()
            first = first or now
            last = now
            for m in batch.messages:
                sent, tagged = STAMP.unpack_from(m.payload)
                if tagged == tag:
                    latencies.append(now - sent)
                else:
                    stale += 1
            unacked.extend(m.id for m in batch.messages)
            if len(latencies) >= count:
                return

    acker = asyncio.ensure_future(acknowledge())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run(), within)
    stream.cancel()
    acker.cancel()
    if unacked:
        await stub.Ack(pb.AckRequest(ids=unacked))
    await channel.close()
    return {"received": len(latencies), "stale": stale, "first": first, "last": last, "latencies": latencies}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["produce", "consume"])
    parser.add_argument("--target", required=True)
    parser.add_argument("--to", default="billing")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--persistent", action="store_true")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--within", type=float, default=300.0)
    parser.add_argument("--queue", default="bench", help="the run's name: its first 8 bytes tag the messages")
    args = parser.parse_args()
    if args.role == "produce":
        result = asyncio.run(
            produce(
                args.target, args.to, args.count, args.size, args.persistent, args.rate, args.batch, tag_of(args.queue)
            )
        )
    else:
        result = asyncio.run(consume(args.target, args.count, args.within, tag_of(args.queue)))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
