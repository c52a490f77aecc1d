"""Large messages between real sidecar processes and a real mongod: streamed in, moved in chunks,
resumed after a crash, verified, bounded in size and in memory."""

import asyncio
import hashlib
import http.client
import io
import json
import random
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from pymongo import AsyncMongoClient

from goq.api.v1 import envelope_pb2, peer_pb2, peer_pb2_grpc
from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess
from goq.identity import Address
from goq.messages import LargeRef, Message
from goq.sidecar.large.macs import body_mac
from goq.signing import Keyring

from .conftest import KEY, App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]

MiB = 1024 * 1024
GiB = 1024 * MiB
RSS_BOUND = 150 * MiB
"""Peak resident memory allowed to each sidecar while it moves a 1 GiB message."""
PATIENT = json.dumps({"maxAttempts": 100, "initialBackoff": "200ms", "maxBackoff": "1s", "maxAge": "1h"})


def pattern(size: int, seed: int = 7, piece: int = MiB) -> tuple[Callable[[], AsyncIterator[bytes]], str]:
    """A reproducible payload of ``size`` bytes, produced piece by piece (never whole), and its SHA-256."""
    digest = hashlib.sha256()
    for data in _pieces(size, seed, piece):
        digest.update(data)

    async def stream() -> AsyncIterator[bytes]:
        for data in _pieces(size, seed, piece):
            yield data

    return stream, digest.hexdigest()


def _pieces(size: int, seed: int, piece: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    block = rng.randbytes(piece)
    sent = 0
    index = 0
    while sent < size:
        n = min(piece, size - sent)
        # Each piece differs (its index is mixed in), so a chunk in the wrong place changes the digest.
        data = index.to_bytes(8, "big") + block[8:n] if n >= 8 else block[:n]
        yield data
        sent += n
        index += 1


async def send_large(
    app: App, to: str, size: int, *, persistent: bool = True, declare: bool = True, seed: int = 7
) -> tuple[pb.SendResponse, str]:
    """``SendLarge`` as the clients do it: the header, the sidecar's go-ahead (initial metadata), the data."""
    stream, digest = pattern(size, seed)
    call = app.stub.SendLarge()
    header = pb.LargeSendHeader(to=to, persistent=persistent, size=size if declare else None)
    await call.write(pb.LargeSendPart(header=header))
    if (await call.initial_metadata()).get("goq-large") == "accepted":
        async for data in stream():
            await call.write(pb.LargeSendPart(data=data))
        await call.done_writing()
    response: pb.SendResponse = await call
    return response, digest


async def receive_large(app: App, within: float) -> tuple[pb.ReceivedMessage, str]:
    """The first message to arrive, and the SHA-256 of its payload read as a stream; then acknowledged."""
    (message,) = await app.receive(1, within=within, ack=False)
    assert message.large
    digest = hashlib.sha256()
    read = 0
    async for chunk in app.stub.ReadPayload(pb.ReadPayloadRequest(id=message.id)):
        digest.update(chunk.data)
        read += len(chunk.data)
    assert read == message.payload_size
    await app.stub.Ack(pb.AckRequest(ids=[message.id]))
    return message, digest.hexdigest()


def peak_rss(sidecar: SidecarProcess) -> int:
    """The process's peak resident set size so far (VmHWM), in bytes."""
    assert sidecar.process is not None
    for line in Path(f"/proc/{sidecar.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def metric(sidecar: SidecarProcess, name: str) -> float:
    with urllib.request.urlopen(f"{sidecar.health_url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name}")


async def stored_bodies(mongo_uri: str, database: str) -> tuple[int, int]:
    """GridFS chunk documents and large outbox records in the test's database."""
    async with AsyncMongoClient[dict[str, object]](mongo_uri) as client:
        db = client[database]
        return await db["goq_large.chunks"].count_documents({}), await db["large_outbox"].count_documents({})


async def test_a_1_gib_persistent_message_arrives_intact_and_each_sidecar_stays_under_150_mb(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", GOQ_QUEUE_SPEC=json.dumps({"maxMessageSize": "1Gi"}))
    orders, billing = apps(group["orders"]), apps(group["billing"])
    receipt, sent = await send_large(orders, "billing", GiB)
    assert receipt.state == "queued"
    message, got = await receive_large(billing, within=900)
    assert (message.id, message.payload_size, got) == (receipt.id, GiB, sent)
    peaks = {name: peak_rss(s) for name, s in group.items()}
    assert all(peak < RSS_BOUND for peak in peaks.values()), f"peak RSS (bytes): {peaks}"
    assert metric(group["billing"], "goq_large_bytes_received_total") == GiB


async def test_the_receiver_killed_half_way_resumes_the_transfer_after_its_restart(
    sidecars: Sidecars, apps: Apps
) -> None:
    size = 256 * MiB
    spec = json.dumps({"maxMessageSize": "1Gi"})
    group = sidecars("orders", "billing", GOQ_QUEUE_SPEC=spec, GOQ_RETRY_POLICY=PATIENT)
    orders = apps(group["orders"])
    receipt, sent = await send_large(orders, "billing", size)
    billing = group["billing"]
    watcher = apps(billing)
    for _ in range(1200):  # until about half is in
        if (await watcher.stats()).large_bytes_received >= size // 2:
            break
        await asyncio.sleep(0.05)
    billing.kill()
    billing.start()
    message, got = await receive_large(apps(billing), within=600)
    assert (message.id, got) == (receipt.id, sent)
    stats = await apps(billing).stats()
    assert stats.large_transfers_resumed == 1
    # The restarted sidecar received only what it lacked, not the whole body again.
    assert 0 < stats.large_bytes_received < size
    assert "resuming at" in billing.log()


async def test_a_tampered_chunk_is_refused_whole_and_never_reaches_the_application(
    sidecars: Sidecars, apps: Apps, mongo_uri: str, database: str
) -> None:
    group = sidecars("billing")
    billing = group["billing"]
    chunk = 64 * 1024
    body = random.Random(3).randbytes(4 * chunk)
    keyring = Keyring({"k1": KEY}, "k1")
    mac = body_mac(keyring, "k1")
    mac.update(body)
    message = Message(
        id="tampered-1",
        source=Address("mallory", "default"),
        destination=Address("billing", "default"),
        created_at_ms=int(time.time() * 1000),  # fresh: an older envelope would be refused as expired
        payload=b"",
        large=LargeRef(size=len(body), mac=mac.digest(), key_id="k1", chunk_size=chunk),
    )
    encoded = message.encode()
    key_id, signature = keyring.sign(encoded)
    tampered = bytearray(body)
    tampered[2 * chunk + 5] ^= 0x01  # one bit of the third chunk

    async def parts() -> AsyncIterator[peer_pb2.TransferPart]:
        yield peer_pb2.TransferPart(
            begin=envelope_pb2.SignedEnvelope(body=encoded, key_id=key_id, signature=signature, attempt=1)
        )
        for offset in range(0, len(tampered), chunk):
            data = bytes(tampered[offset : offset + chunk])
            yield peer_pb2.TransferPart(chunk=peer_pb2.TransferChunk(offset=offset, data=data))
        yield peer_pb2.TransferPart(end=True)

    async with grpc.aio.insecure_channel(billing.peer_target) as channel:
        acks = [a async for a in peer_pb2_grpc.PeerStub(channel).Transfer(parts())]
    result = acks[-1].result
    assert result.outcome == peer_pb2.OUTCOME_REJECTED
    assert result.reason.startswith("bad-signature")
    assert await apps(billing).quiet(2.0) == []
    assert (await apps(billing).stats()).refused == 1
    assert await stored_bodies(mongo_uri, database) == (0, 0)


async def test_a_message_over_the_limit_is_refused_before_anything_is_stored(
    sidecars: Sidecars, apps: Apps, mongo_uri: str, database: str
) -> None:
    group = sidecars("orders", "billing", GOQ_QUEUE_SPEC=json.dumps({"maxMessageSize": "8Mi"}))
    orders = group["orders"]
    app = apps(orders)
    # gRPC, size declared: refused at the header.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await send_large(app, "billing", 8 * MiB + 1)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "limit is 8388608 bytes" in (refused.value.details() or "")
    # REST, Content-Length over the limit: 413 with only the headers sent.
    connection = http.client.HTTPConnection("127.0.0.1", orders.rest_port, timeout=30)
    connection.putrequest("POST", "/v1/messages?to=billing")
    connection.putheader("Content-Type", "application/octet-stream")
    connection.putheader("Content-Length", str(9 * MiB))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413
    assert json.loads(answer.read())["error"]["code"] == "payload_too_large"
    connection.close()
    # With Expect: 100-continue (curl's way for big bodies), the refusal comes instead of the 100.
    with socket.create_connection(("127.0.0.1", orders.rest_port), timeout=30) as raw:
        raw.sendall(
            b"POST /v1/messages?to=billing HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 9437184\r\nExpect: 100-continue\r\n\r\n"
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 413 ")
    # A stream of unknown length is cut off at the limit, and what had been stored is dropped.
    with pytest.raises(grpc.aio.AioRpcError) as cut:
        await send_large(app, "billing", 9 * MiB, declare=False)
    assert cut.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await stored_bodies(mongo_uri, database) == (0, 0)
    assert (await app.stats()).sent == 0
    # Within the limit, Expect: 100-continue gets its 100 and the body streams in.
    async with aiohttp.ClientSession() as session:
        url = f"{orders.rest_url}/v1/messages?to=billing"
        headers = {"Content-Type": "application/octet-stream"}
        body = io.BytesIO(b"y" * 2 * MiB)
        async with session.post(url, data=body, headers=headers, expect100=True) as answer:
            assert answer.status == 202, await answer.text()
    assert (await app.stats()).sent == 1


async def test_transient_large_messages_spill_to_a_bounded_directory_and_arrive_over_rest(
    sidecars: Sidecars, tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    group = sidecars(
        "orders",
        "billing",
        GOQ_SPILL_DIR=str(spill),
        GOQ_SPILL_LIMIT_BYTES=str(16 * MiB),
        GOQ_MONGODB_URI="",
        GOQ_QUEUE_SPEC='{"poisonQueue": {"type": "log"}}',
    )
    orders, billing = group["orders"], group["billing"]
    stream, digest = pattern(12 * MiB, seed=11, piece=100_000)
    async with aiohttp.ClientSession() as http:
        url = f"{orders.rest_url}/v1/messages?to=billing&persistent=false"
        headers = {"Content-Type": "application/octet-stream"}
        async with http.post(url, data=stream(), headers=headers) as answer:  # chunked: no Content-Length
            assert answer.status == 202, await answer.text()
        async with http.get(f"{billing.rest_url}/v1/messages?wait=60") as answer:
            (message,) = (await answer.json())["messages"]
        assert (message["large"], message["payloadSize"], message["payload"]) == (True, 12 * MiB, "")
        assert any((spill / "bodies").iterdir())  # the body sits in the receiver's spill area, not in memory
        received = hashlib.sha256()
        async with http.get(f"{billing.rest_url}/v1/messages/{message['id']}/payload") as answer:
            assert answer.headers["Content-Length"] == str(12 * MiB)
            async for data in answer.content.iter_chunked(MiB):
                received.update(data)
        assert received.hexdigest() == digest
        async with http.post(f"{billing.rest_url}/v1/messages/{message['id']}/ack") as answer:
            assert answer.status == 204
        big, _ = pattern(17 * MiB, seed=12)
        async with http.post(url, data=big(), headers=headers) as answer:
            assert answer.status == 429
            assert "spill area" in (await answer.json())["error"]["message"]


async def test_the_sender_killed_half_way_resumes_from_what_the_receiver_holds(sidecars: Sidecars, apps: Apps) -> None:
    size = 192 * MiB
    spec = json.dumps({"maxMessageSize": "1Gi"})
    group = sidecars("orders", "billing", GOQ_QUEUE_SPEC=spec, GOQ_RETRY_POLICY=PATIENT)
    orders, billing = group["orders"], apps(group["billing"])
    receipt, sent = await send_large(apps(orders), "billing", size)
    for _ in range(1200):  # until about half is across
        if (await billing.stats()).large_bytes_received >= size // 2:
            break
        await asyncio.sleep(0.05)
    orders.kill()
    orders.start()  # its large outbox is read back and the delivery resumed
    message, got = await receive_large(billing, within=600)
    assert (message.id, got) == (receipt.id, sent)
    stats = await billing.stats()
    assert stats.large_transfers_resumed == 1
    assert stats.large_bytes_received == size  # every byte exactly once, across both transfers
    assert "holds" in orders.log()
