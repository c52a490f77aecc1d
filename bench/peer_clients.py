"""Producer and consumer processes for the peers GoQ is compared with: RabbitMQ, NATS JetStream, a bare gRPC hop.

Run as ``peer_clients.py produce|consume --system rabbitmq|nats|hop --target ... --queue NAME``. Like GoQ's
clients, each message's first 8 bytes carry its send time, the consumer prints ``ready`` once subscribed and,
at the end, one line of JSON (the producer: ``start``/``accepted``; the consumer: every latency).
The client libraries are imported only by the system that needs them.

Each peer runs through its fastest Python client, set up as its users tune it, because a comparison is only
worth what its weakest peer setup is worth: RabbitMQ through pika (an event-loop connection for the producer,
so that 1,000 publishes await their confirms at once; a blocking consumer with prefetch), NATS JetStream
through nats-py on uvloop with 4,000 publishes awaiting their PubAck. ``--client aio-pika`` and
``--loop asyncio`` keep the slower setups measurable.
"""

import argparse
import asyncio
import collections
import contextlib
import json
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from filler import filler

STAMP = struct.Struct("<d")
WINDOW = 1000  # publishes awaiting their confirmation at once, in throughput runs (RabbitMQ)
NATS_WINDOW = 4000  # nats-py's PubAcks are cheap to wait for: a deeper window is how its users run it


def payload(size: int) -> bytes:
    return STAMP.pack(time.time()) + filler(size - STAMP.size)


def ready() -> None:
    print("ready", flush=True)


async def paced(count: int, rate: float) -> AsyncIterator[int]:
    """Yield 0..count-1, at ``rate`` per second when given, else as fast as the caller takes them."""
    start = time.time()
    for i in range(count):
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        yield i


async def confirmed(
    publish: Callable[[bytes], Awaitable[object]], count: int, size: int, rate: float, depth: int = WINDOW
) -> int:
    """Publish ``count`` messages, keeping at most ``depth`` unconfirmed; return how many were confirmed."""
    window = asyncio.Semaphore(depth)
    accepted = 0

    async def one(body: bytes) -> None:
        nonlocal accepted
        try:
            await publish(body)
            accepted += 1
        finally:
            window.release()

    tasks = set()
    async for _ in paced(count, rate):
        await window.acquire()
        task = asyncio.ensure_future(one(payload(size)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return accepted


class Arrivals:
    """What the consumer saw: every latency and the last arrival time."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.latencies: list[float] = []
        self.last = 0.0
        self.done = asyncio.Event()

    def add(self, body: bytes) -> None:
        self.last = time.time()
        self.latencies.append(self.last - STAMP.unpack_from(body)[0])
        if len(self.latencies) >= self.count:
            self.done.set()

    async def wait(self, within: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), within)

    def result(self) -> dict[str, object]:
        return {"received": len(self.latencies), "last": self.last, "latencies": self.latencies}


# RabbitMQ: a durable queue, persistent messages, publisher confirms, manual acks with a tuned prefetch.

PREFETCH = 2000
ACK_EVERY = 200


def queue_arguments(queue_type: str) -> dict[str, str]:
    """A classic queue (RabbitMQ's default) or a quorum queue (replicated Raft log, its recommended durable type)."""
    return {"x-queue-type": queue_type}


async def rabbitmq_produce(target: str, queue: str, count: int, size: int, rate: float) -> int:
    import aio_pika  # imported here: only this system needs it

    connection = await aio_pika.connect(target)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments=queue_arguments("classic"))

        async def publish(body: bytes) -> object:
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            return await channel.default_exchange.publish(message, routing_key=queue)

        return await confirmed(publish, count, size, rate)


async def rabbitmq_consume(target: str, queue: str, arrivals: Arrivals, within: float) -> None:
    import aio_pika

    connection = await aio_pika.connect(target)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        declared = await channel.declare_queue(queue, durable=True, arguments=queue_arguments("classic"))
        unacked = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal unacked
            arrivals.add(message.body)
            unacked += 1
            if unacked >= ACK_EVERY or arrivals.done.is_set():
                unacked = 0
                await message.ack(multiple=True)

        tag = await declared.consume(on_message)
        ready()
        await arrivals.wait(within)
        await declared.cancel(tag)
        await declared.delete(if_unused=False, if_empty=False)


class PikaPublisher:
    """pika's event-loop connection publishing ``count`` persistent messages with at most WINDOW unconfirmed.

    RabbitMQ confirms with ``multiple`` acks covering every tag up to one: outstanding tags are kept in
    publish order, so each confirm costs what it settles."""

    def __init__(self, target: str, queue: str, queue_type: str, count: int, size: int, rate: float) -> None:
        import pika

        self.pika = pika
        self.queue, self.queue_type = queue, queue_type
        self.count, self.size, self.rate = count, size, rate
        self.published = self.confirmed = self.settled = 0
        self.outstanding: collections.deque[int] = collections.deque()
        self.settled_alone: set[int] = set()
        self.start = 0.0
        self.error: str | None = None
        self.channel: Any = None
        self.connection = pika.SelectConnection(
            pika.URLParameters(target),
            on_open_callback=lambda conn: conn.channel(on_open_callback=self.on_channel),
            on_open_error_callback=lambda _conn, exc: self.fail(f"cannot connect: {exc}"),
            on_close_callback=lambda _conn, _reason: self.connection.ioloop.stop(),
        )

    def run(self) -> int:
        self.connection.ioloop.start()
        if self.error:
            raise SystemExit(f"pika producer: {self.error}")
        return self.confirmed

    def fail(self, error: str) -> None:
        self.error = error
        self.connection.ioloop.stop()

    def on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(ack_nack_callback=self.on_confirm, callback=lambda _frame: self.declare())

    def declare(self) -> None:
        arguments = queue_arguments(self.queue_type)
        self.channel.queue_declare(self.queue, durable=True, arguments=arguments, callback=lambda _f: self.begin())

    def begin(self) -> None:
        self.start = time.time()
        self.pump()

    def pump(self) -> None:
        due = self.count
        if self.rate:
            due = min(self.count, int((time.time() - self.start) * self.rate) + 1)
        properties = self.pika.BasicProperties(delivery_mode=2)
        while self.published < due and self.published - self.settled < WINDOW:
            self.channel.basic_publish("", self.queue, payload(self.size), properties)
            self.published += 1
            self.outstanding.append(self.published)
        if self.rate and self.published < self.count:
            self.connection.ioloop.call_later(0.001, self.pump)

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        acked = isinstance(method, self.pika.spec.Basic.Ack)
        if method.multiple:
            while self.outstanding and self.outstanding[0] <= method.delivery_tag:
                tag = self.outstanding.popleft()
                if tag in self.settled_alone:
                    self.settled_alone.discard(tag)
                else:
                    self.settle(acked)
        else:
            self.settled_alone.add(method.delivery_tag)
            self.settle(acked)
            while self.outstanding and self.outstanding[0] in self.settled_alone:
                self.settled_alone.discard(self.outstanding.popleft())
        if self.settled >= self.count:
            self.connection.close()
        elif not self.rate:
            self.pump()

    def settle(self, acked: bool) -> None:
        self.settled += 1
        self.confirmed += acked


def pika_produce(target: str, queue: str, queue_type: str, count: int, size: int, rate: float) -> int:
    return PikaPublisher(target, queue, queue_type, count, size, rate).run()


def pika_consume(target: str, queue: str, queue_type: str, arrivals: Arrivals, within: float) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(target))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)
    channel.queue_declare(queue, durable=True, arguments=queue_arguments(queue_type))
    unacked = 0

    def on_message(channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        nonlocal unacked
        arrivals.add(body)
        unacked += 1
        if unacked >= ACK_EVERY or arrivals.done.is_set():
            unacked = 0
            channel.basic_ack(method.delivery_tag, multiple=True)

    channel.basic_consume(queue, on_message)
    ready()
    deadline = time.time() + within
    while not arrivals.done.is_set() and time.time() < deadline:
        connection.process_data_events(time_limit=0.1)
    channel.queue_delete(queue)
    connection.close()


# NATS JetStream: a file-storage stream, acknowledged publish, a push consumer with explicit acks.


async def nats_stream(target: str, queue: str):  # type: ignore[no-untyped-def]
    import nats
    from nats.js.api import StorageType, StreamConfig

    client = await nats.connect(target)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=queue, subjects=[queue], storage=StorageType.FILE))
    return client, js


async def nats_produce(target: str, queue: str, count: int, size: int, rate: float) -> int:
    client, js = await nats_stream(target, queue)
    try:
        return await confirmed(lambda body: js.publish(queue, body, timeout=30), count, size, rate, NATS_WINDOW)
    finally:
        await client.close()


async def nats_consume(target: str, queue: str, arrivals: Arrivals, within: float) -> None:
    from nats.js.api import AckPolicy, ConsumerConfig

    client, js = await nats_stream(target, queue)

    async def on_message(message) -> None:  # type: ignore[no-untyped-def]
        arrivals.add(message.data)
        await message.ack()

    config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=PREFETCH * 10)
    await js.subscribe(queue, durable="bench", cb=on_message, manual_ack=True, config=config)
    ready()
    await arrivals.wait(within)
    await client.flush()
    await js.delete_stream(queue)
    await client.close()


# The bare gRPC hop (bench/grpc_hop.py): batches of equal-sized messages in raw bytes, no queueing.

HOP_BATCH = 500
HOP_BATCH_BYTES = 1024 * 1024  # gRPC refuses messages over 4 MiB: 64 KiB payloads go 16 to a call


async def hop_produce(target: str, queue: str, count: int, size: int, rate: float) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        send = channel.stream_unary("/hop.Hop/Send", request_serializer=None, response_deserializer=None)

        async def batches() -> AsyncIterator[bytes]:
            if rate:
                async for _ in paced(count, rate):
                    yield payload(size)
            else:
                step = max(1, min(HOP_BATCH, HOP_BATCH_BYTES // size))
                for first in range(0, count, step):
                    yield b"".join(payload(size) for _ in range(min(step, count - first)))

        await send(batches())
    return count


async def hop_consume(target: str, size: int, arrivals: Arrivals, within: float) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.channel_ready()
        receive = channel.unary_stream("/hop.Hop/Receive", request_serializer=None, response_deserializer=None)
        call = receive(b"")
        await call.read()  # the server's empty hello: attached
        ready()

        async def drain() -> None:
            while (batch := await call.read()) is not grpc.aio.EOF:
                assert isinstance(batch, bytes)
                for offset in range(0, len(batch), size):
                    arrivals.add(batch[offset : offset + size])
                if arrivals.done.is_set():
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain(), within)
        call.cancel()


def produce_blocking(args: argparse.Namespace) -> dict[str, object]:
    start = time.time()
    accepted = pika_produce(args.target, args.queue, args.queue_type, args.count, args.size, args.rate)
    return {"accepted": accepted, "start": start, "end": time.time()}


def consume_blocking(args: argparse.Namespace) -> dict[str, object]:
    arrivals = Arrivals(args.count)
    pika_consume(args.target, args.queue, args.queue_type, arrivals, args.within)
    return arrivals.result()


async def produce(args: argparse.Namespace) -> dict[str, object]:
    start = time.time()
    producers = {"rabbitmq": rabbitmq_produce, "nats": nats_produce, "hop": hop_produce}
    accepted = await producers[args.system](args.target, args.queue, args.count, args.size, args.rate)
    return {"accepted": accepted, "start": start, "end": time.time()}


async def consume(args: argparse.Namespace) -> dict[str, object]:
    arrivals = Arrivals(args.count)
    if args.system == "rabbitmq":
        await rabbitmq_consume(args.target, args.queue, arrivals, args.within)
    elif args.system == "nats":
        await nats_consume(args.target, args.queue, arrivals, args.within)
    else:
        await hop_consume(args.target, args.size, arrivals, args.within)
    return arrivals.result()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["produce", "consume"])
    parser.add_argument("--system", choices=["rabbitmq", "nats", "hop"], required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--queue", default="bench")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--within", type=float, default=300.0)
    parser.add_argument("--client", choices=["pika", "aio-pika"], default="pika", help="RabbitMQ's client")
    parser.add_argument("--queue-type", choices=["classic", "quorum"], default="classic", help="RabbitMQ's queue")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop", help="the event loop (asyncio)")
    args = parser.parse_args()
    if args.system == "rabbitmq" and args.client == "pika":
        result = produce_blocking(args) if args.role == "produce" else consume_blocking(args)
    else:
        if args.system == "rabbitmq" and args.queue_type != "classic":
            parser.error("--queue-type quorum is measured through pika only")
        run: Callable[[Any], Any] = asyncio.run
        if args.loop == "uvloop":
            import uvloop  # the bench extra

            run = uvloop.run
        result = run(produce(args) if args.role == "produce" else consume(args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
