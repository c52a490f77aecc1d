"""The Python client, async and blocking, against real sidecars: what the examples and tests rely on."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from goq.client import (
    AsyncClient,
    Client,
    InvalidMessageError,
    MessageNotFoundError,
    Outgoing,
    Received,
    Stats,
    UnavailableError,
)
from goq.devenv.sidecars import SidecarProcess

Sidecars = Callable[..., dict[str, SidecarProcess]]


async def test_async_client_sends_receives_and_acknowledges(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    async with AsyncClient(group["orders"].grpc_target) as orders, AsyncClient(group["billing"].grpc_target) as billing:
        receipt = await orders.send("billing", b"invoice 42", headers={"kind": "invoice"}, id="inv-42")
        assert (receipt.id, receipt.state) == ("inv-42", "queued")
        results = await orders.send_many(
            [Outgoing("billing", f"n{i}".encode()) for i in range(3)] + [Outgoing("", b"x")]
        )
        assert [type(r).__name__ for r in results] == ["Receipt"] * 3 + ["InvalidMessageError"]

        got = []
        async for message in billing.receive(max_in_flight=10):
            got.append(message)
            assert await billing.ack(message.id) == []
            if len(got) == 4:
                break
        assert got[0].payload == b"invoice 42"
        assert (got[0].sender, got[0].headers, got[0].attempt) == ("orders.default", {"kind": "invoice"}, 1)
        assert [m.payload for m in got[1:]] == [b"n0", b"n1", b"n2"]
        stats = await billing.stats()
        assert (stats.received, stats.acknowledged) == (4, 4)


async def test_async_client_errors_are_typed(sidecars: Sidecars) -> None:
    orders = sidecars("orders")["orders"]
    async with AsyncClient(orders.grpc_target) as client:
        with pytest.raises(InvalidMessageError, match="destination identity 'Nope' must be lower case"):
            await client.send("Nope", b"x")
        with pytest.raises(MessageNotFoundError, match="not leased"):
            await client.nack("missing")
    async with AsyncClient("127.0.0.1:1", timeout=2) as nowhere:
        with pytest.raises(UnavailableError):
            await nowhere.send("billing", b"x")


def test_blocking_client_round_trip(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    with Client(group["orders"].grpc_target) as orders, Client(group["billing"].grpc_target) as billing:
        receipt = orders.send("billing", b"sync hello", persistent=False)
        (message,) = list(billing.receive(within=30.0))[:1]
        assert (message.id, message.payload, message.persistent) == (receipt.id, b"sync hello", False)
        billing.nack(message.id, requeue=False, reason="testing")
        (entry,) = billing.poisoned()
        assert (entry.id, entry.reason, entry.detail) == (receipt.id, "nack", "rejected by the application: testing")
        assert billing.redrive([receipt.id]) == [receipt.id]
        again = next(iter(billing.receive(within=30.0)))
        assert again.id == receipt.id
        assert billing.ack(again.id) == []


async def given_back(client: AsyncClient) -> Stats:
    """The sidecar's stats once nothing is leased: a Receive stream the client left gives back its messages not
    acknowledged, as soon as the sidecar learns the stream ended (a moment after the client)."""
    for _ in range(50):
        stats = await client.stats()
        if stats.in_flight == 0:
            break
        await asyncio.sleep(0.1)
    return stats


async def test_acknowledgements_on_one_stream_are_answered_in_order_and_release_the_leases(
    sidecars: Sidecars,
) -> None:
    group = sidecars("orders", "billing")
    async with AsyncClient(group["orders"].grpc_target) as orders, AsyncClient(group["billing"].grpc_target) as billing:
        await orders.send_many([Outgoing("billing", f"n{i}".encode(), persistent=False) for i in range(5)])
        ids = []
        async for message in billing.receive(max_in_flight=5):
            ids.append(message.id)
            if len(ids) == 5:
                break
        stats = await given_back(billing)  # leaving the loop gave them back, not acknowledged: still acknowledgeable
        assert (stats.in_flight, stats.receive_queue) == (0, 5)
        async with billing.acknowledger() as acks:
            assert await acks.ack(*ids[:2]) == []
            assert await acks.ack(*ids[2:], "never-received") == ["never-received"]
            assert await acks.ack(ids[0]) == [ids[0]]  # acknowledged already
        stats = await billing.stats()
        assert (stats.acknowledged, stats.in_flight) == (5, 0)


def test_blocking_client_acknowledges_on_one_stream(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    with Client(group["orders"].grpc_target) as orders, Client(group["billing"].grpc_target) as billing:
        receipts = orders.send_many([Outgoing("billing", f"n{i}".encode(), persistent=False) for i in range(3)])
        ids = []
        for message in billing.receive(max_in_flight=3, within=30.0):
            ids.append(message.id)
            if len(ids) == 3:
                break
        assert sorted(ids) == sorted(r.id for r in receipts if not isinstance(r, Exception))
        with billing.acknowledger() as acks:
            assert acks.ack(*ids) == []
            assert acks.ack(ids[0], "never-received") == [ids[0], "never-received"]
        stats = billing.stats()
        assert (stats.acknowledged, stats.in_flight) == (3, 0)


async def test_async_receive_within_a_deadline_ends_quietly_with_what_arrived(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    async with AsyncClient(group["orders"].grpc_target) as orders, AsyncClient(group["billing"].grpc_target) as billing:
        receipt = await orders.send("billing", b"one", persistent=False)
        started = time.monotonic()
        got = [message async for message in billing.receive(within=3.0)]
        waited = time.monotonic() - started
        assert [m.id for m in got] == [receipt.id]
        assert 3.0 <= waited < 10.0
        stats = await given_back(billing)  # when the stream ended; not handed out again since
        assert (stats.in_flight, stats.receive_queue) == (0, 1)
        assert await billing.ack(receipt.id) == []  # still the application's after the stream ended: acknowledged now
        assert (await billing.stats()).receive_queue == 0


async def test_streaming_receive_never_hands_out_more_than_max_in_flight(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    async with AsyncClient(group["orders"].grpc_target) as orders, AsyncClient(group["billing"].grpc_target) as billing:
        await orders.send_many([Outgoing("billing", f"n{i}".encode()) for i in range(50)])
        got: list[Received] = []
        arrived = asyncio.Condition()

        async def consume() -> None:
            async for message in billing.receive(max_in_flight=5):
                async with arrived:
                    got.append(message)
                    arrived.notify_all()

        async def count_reaches(n: int) -> None:
            async with arrived:
                await arrived.wait_for(lambda: len(got) >= n)

        consumer = asyncio.create_task(consume())
        try:
            await asyncio.wait_for(count_reaches(5), 30)
            await asyncio.sleep(1.5)
            assert len(got) == 5, "more than max_in_flight unacknowledged messages were handed out"
            await billing.ack(got[0].id, got[1].id)
            await asyncio.wait_for(count_reaches(7), 30)
            await asyncio.sleep(1.5)
            assert len(got) == 7
            assert len({m.id for m in got}) == 7
        finally:
            consumer.cancel()


async def test_a_w3c_traceparent_header_arrives_unchanged_so_traces_stitch(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with AsyncClient(group["orders"].grpc_target) as orders, AsyncClient(group["billing"].grpc_target) as billing:
        await orders.send("billing", b"traced", headers={"traceparent": traceparent, "tracestate": "goq=1"})
        async for message in billing.receive():
            assert message.headers == {"traceparent": traceparent, "tracestate": "goq=1"}
            break


async def test_async_client_streams_a_large_message_both_ways(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing", GOQ_QUEUE_SPEC='{"maxMessageSize": "4Mi"}')
    pieces = [bytes([i]) * 700_000 for i in range(5)]  # 3.5 MB in pieces that are not chunk-sized
    async with AsyncClient(group["orders"].grpc_target) as orders, AsyncClient(group["billing"].grpc_target) as billing:
        with pytest.raises(InvalidMessageError, match="limit is 4194304 bytes"):
            await orders.send_large("billing", pieces, size=5_000_000)  # refused before a byte is sent
        receipt = await orders.send_large("billing", pieces, size=3_500_000, headers={"kind": "scan"}, id="scan-1")
        assert (receipt.id, receipt.state) == ("scan-1", "queued")
        message = await anext(aiter(billing.receive(max_in_flight=1)))
        assert (message.id, message.large, message.payload_size, message.payload) == ("scan-1", True, 3_500_000, b"")
        assert message.headers == {"kind": "scan"}
        assert b"".join([c async for c in billing.read_payload(message.id)]) == b"".join(pieces)
        assert b"".join([c async for c in billing.read_payload(message.id, offset=3_499_990)]) == bytes([4]) * 10
        assert await billing.ack(message.id) == []
        with pytest.raises(MessageNotFoundError):
            [c async for c in billing.read_payload(message.id)]


def test_blocking_client_sends_a_file_and_reads_it_back(sidecars: Sidecars, tmp_path: Path) -> None:
    group = sidecars("orders", "billing", GOQ_QUEUE_SPEC='{"maxMessageSize": "4Mi"}')
    source = tmp_path / "report.bin"
    source.write_bytes(b"0123456789abcdef" * 200_000)
    seen: list[tuple[int, int]] = []
    with Client(group["orders"].grpc_target) as orders, Client(group["billing"].grpc_target) as billing:
        receipt = orders.send_file("billing", source, persistent=False, progress=lambda d, t: seen.append((d, t)))
        assert seen[-1] == (3_200_000, 3_200_000)
        message = next(iter(billing.receive(within=30.0)))
        assert (message.id, message.large, message.persistent) == (receipt.id, True, False)
        assert b"".join(billing.read_payload(message.id)) == source.read_bytes()
        assert billing.ack(message.id) == []
        with pytest.raises(InvalidMessageError, match="limit is 4194304 bytes"):
            orders.send_large("billing", iter([b"x" * 1000] * 5000), size=5_000_000)
