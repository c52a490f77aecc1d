"""Keys rotate under traffic with nothing poisoned and nothing lost, and a retired key is refused afterwards.

Each sidecar reads its keys from a directory updated as the kubelet updates a mounted Secret. The
sender gets the new active key first (the receiver does not know it yet): its messages are answered
"retry later" and retried, none poisoned. Once the receiver has the key everything arrives. Once the
old key is removed from the receiver, an envelope signed with it is refused and never delivered.
"""

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families

from goq.api.v1 import envelope_pb2, peer_pb2, peer_pb2_grpc
from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.secret_volume import SecretVolume
from goq.devenv.sidecars import SidecarProcess
from goq.identity import Address
from goq.messages import LargeRef, Message, new_message_id
from goq.signing import Keyring

from .conftest import App
from .test_peer_security import deliver, signed
from .traffic import Traffic

OLD, NEW = b"o" * 32, b"n" * 32
Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
RETRIES = json.dumps({"initialBackoff": "100ms", "maxBackoff": "500ms", "maxAttempts": 200})
"""Quick retries, and a budget (about 100 s) well beyond the time the receiver goes without the new key."""


def metric(sidecar: SidecarProcess, name: str) -> dict[str, float]:
    """``name``'s samples by their ``reason`` label (or ``""``), from the sidecar's ``/metrics``."""
    with urllib.request.urlopen(f"{sidecar.health_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.labels.get("reason", ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


async def reloaded(sidecar: SidecarProcess, times: int, within: float = 15.0) -> None:
    """Wait until the sidecar has put a changed key ring in force ``times`` times."""
    deadline = time.monotonic() + within
    while metric(sidecar, "goq_key_ring_reloads_total").get("", 0) < times:
        assert time.monotonic() < deadline, f"{sidecar.identity} did not reload its key ring\n{sidecar.log()[-3000:]}"
        await asyncio.sleep(0.1)


async def test_a_rotation_under_traffic_poisons_nothing_loses_nothing_and_retires_the_old_key(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    volumes = {
        who: SecretVolume(tmp_path / f"keys-{who}", {"k1": OLD, "active": b"k1"}) for who in ("orders", "billing")
    }
    group = sidecars("orders", "billing", start=False, GOQ_HMAC_KEYS="", GOQ_RETRY_POLICY=RETRIES)
    for who, sidecar in group.items():
        sidecar.env["GOQ_KEYS_DIR"] = str(volumes[who].path)
        sidecar.start()
    orders, billing = apps(group["orders"]), apps(group["billing"])
    async with Traffic(orders, "billing", billing) as traffic:
        await asyncio.sleep(1.0)
        assert traffic.received, "nothing flowed before the rotation"

        volumes["orders"].write({"k1": OLD, "k2": NEW, "active": b"k2"})  # the sender signs with k2 first
        await reloaded(group["orders"], 1)
        await asyncio.sleep(3.0)
        refused_meanwhile = metric(group["billing"], "goq_deliveries_refused_total")
        assert refused_meanwhile.get("unknown-key", 0) > 0, refused_meanwhile
        assert (await orders.stats()).poisoned == 0
        waiting = traffic.waiting
        assert waiting > 0, "messages signed with k2 arrived before the receiver knew k2"

        volumes["billing"].write({"k1": OLD, "k2": NEW, "active": b"k2"})  # the receiver learns k2
        await reloaded(group["billing"], 1)
        await asyncio.sleep(1.0)
        await traffic.finish()

    sent, lost = traffic.sent, traffic.lost
    print(
        f"{len(sent)} sent, {len(traffic.received)} received; {waiting} waited for the receiver's key; lost {len(lost)}"
    )
    assert not lost, f"{len(lost)} of {len(sent)} lost, e.g. {sorted(lost)[:5]}"
    assert traffic.received == set(sent)
    assert (await orders.stats()).poisoned == 0
    assert (await billing.stats()).poisoned == 0

    volumes["billing"].write({"k2": NEW, "active": b"k2"})  # k1 retired on the receiver
    await reloaded(group["billing"], 2)
    (results,) = await deliver(
        group["billing"], [signed(b"old key", key_id="k1", key=OLD), signed(b"new key", key_id="k2", key=NEW)]
    )
    assert [peer_pb2.Outcome.Name(r.outcome) for r in results] == ["OUTCOME_RETRY_LATER", "OUTCOME_ACCEPTED"]
    assert results[0].reason.startswith("unknown-key: signed with unknown key 'k1'")
    assert [m.payload for m in await billing.receive(1, within=30)] == [b"new key"]
    assert await billing.quiet(1.0) == []


async def test_a_key_the_receiver_never_learns_is_retried_then_poisoned_naming_the_key(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    volumes = {
        "orders": SecretVolume(tmp_path / "keys-orders", {"k1": OLD, "k2": NEW, "active": b"k2"}),
        "billing": SecretVolume(tmp_path / "keys-billing", {"k1": OLD, "active": b"k1"}),
    }
    retries = json.dumps({"initialBackoff": "100ms", "maxBackoff": "200ms", "maxAttempts": 3})
    group = sidecars("orders", "billing", start=False, GOQ_HMAC_KEYS="", GOQ_RETRY_POLICY=retries)
    for who, sidecar in group.items():
        sidecar.env["GOQ_KEYS_DIR"] = str(volumes[who].path)
        sidecar.start()
    orders, billing = apps(group["orders"]), apps(group["billing"])

    await orders.send("billing", [b"a", b"b"])

    deadline = time.monotonic() + 30
    while (await orders.stats()).poisoned < 2:
        assert time.monotonic() < deadline, "messages signed with a key the receiver lacks were never given up"
        await asyncio.sleep(0.1)
    listed = (await orders.stub.ListPoisoned(pb.ListPoisonedRequest())).messages
    assert sorted((m.payload, m.reason, m.attempts) for m in listed) == [
        (b"a", "max-attempts", 3),
        (b"b", "max-attempts", 3),
    ]
    assert all("unknown key 'k2'" in m.detail for m in listed), [m.detail for m in listed]
    assert metric(group["billing"], "goq_deliveries_refused_total")["unknown-key"] >= 6
    assert await billing.quiet(0.5) == []


async def test_a_large_transfer_signed_with_an_unknown_key_is_answered_retry_later(sidecars: Sidecars) -> None:
    billing = sidecars("billing")["billing"]  # knows k1 only
    body = b"x" * 1000
    message = Message(
        id=new_message_id(),
        source=Address("orders", "default"),
        destination=Address("billing", "default"),
        created_at_ms=int(time.time() * 1000),
        payload=b"",
        large=LargeRef(size=len(body), mac=b"m" * 32, key_id="k2", chunk_size=len(body)),
    )
    encoded = message.encode()
    key_id, signature = Keyring({"k2": NEW}, "k2").sign(encoded)
    envelope = envelope_pb2.SignedEnvelope(body=encoded, key_id=key_id, signature=signature, attempt=1)

    async with grpc.aio.insecure_channel(billing.peer_target) as channel:
        call = peer_pb2_grpc.PeerStub(channel).Transfer()
        await call.write(peer_pb2.TransferPart(begin=envelope))
        ack = await call.read()
        call.cancel()
    assert isinstance(ack, peer_pb2.TransferAck)

    assert peer_pb2.Outcome.Name(ack.result.outcome) == "OUTCOME_RETRY_LATER"
    assert ack.result.reason.startswith("unknown-key: signed with unknown key 'k2'")
    assert metric(billing, "goq_deliveries_refused_total") == {"unknown-key": 1}
