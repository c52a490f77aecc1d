"""Keys per pair of namespaces, with real sidecars: the keys of one namespace cannot make a message from another
namespace that a third accepts, while what that namespace may send still arrives; messages stored under the
cluster-wide ring before the switch (a large one included) are signed again and delivered; a rotation under
traffic loses nothing.

Each sidecar reads its namespace's ring from a directory written as the kubelet writes a mounted Secret, with
the content the operator gives that namespace (``goq.pair_keys.namespace_ring``).
"""

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from goq import pair_keys
from goq.api.v1 import envelope_pb2, peer_pb2
from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.secret_volume import SecretVolume
from goq.devenv.sidecars import SidecarProcess
from goq.identity import Address
from goq.messages import Message, new_message_id
from goq.signing import Keyring

from .conftest import App
from .test_key_rotation import metric, reloaded
from .test_large_messages import MiB, send_large
from .test_peer_security import deliver
from .traffic import Traffic

K1, K2 = b"1" * 32, b"2" * 32
SPACES = ("a", "b", "c")
Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
QUICK = json.dumps({"initialBackoff": "100ms", "maxBackoff": "300ms", "maxAttempts": 400})


def ring(namespace: str, masters: dict[str, bytes] | None = None, active: str = "k1") -> dict[str, bytes]:
    """The Secret content the operator gives ``namespace``, its peers being the three test namespaces."""
    return pair_keys.namespace_ring(masters or {"k1": K1}, active, namespace, SPACES)


def placed(
    sidecars: Sidecars, tmp_path: Path, where: dict[str, tuple[str, dict[str, bytes]]], **env: str
) -> tuple[dict[str, SidecarProcess], dict[str, SecretVolume]]:
    """Sidecars by identity, each in its namespace with its key volume (not started), all knowing each other."""
    group = {
        who: sidecars(who, start=False, namespace=ns, GOQ_HMAC_KEYS="", **env)[who] for who, (ns, _) in where.items()
    }
    volumes = {who: SecretVolume(tmp_path / f"keys-{who}", files) for who, (_, files) in where.items()}
    peers = ",".join(f"{s.address}={s.peer_target}" for s in group.values())
    for who, sidecar in group.items():
        sidecar.env["GOQ_PEERS"] = peers
        sidecar.env["GOQ_KEYS_DIR"] = str(volumes[who].path)
    return group, volumes


async def poisoned(app: App, count: int, within: float = 30.0) -> list[pb.PoisonedMessage]:
    deadline = time.monotonic() + within
    while (await app.stats()).poisoned < count:
        assert time.monotonic() < deadline, f"{count} message(s) never poisoned at {app.sidecar.address}"
        await asyncio.sleep(0.1)
    return list((await app.stub.ListPoisoned(pb.ListPoisonedRequest())).messages)


def forged(source: Address, to: Address, key_id: str, key: bytes) -> envelope_pb2.SignedEnvelope:
    body = Message(
        id=new_message_id(), source=source, destination=to, created_at_ms=int(time.time() * 1000), payload=b"forged"
    ).encode()
    signature = Keyring({"x": key}, "x").sign(body)[1]
    return envelope_pb2.SignedEnvelope(body=body, key_id=key_id, signature=signature, attempt=1)


async def test_the_keys_of_one_namespace_cannot_send_as_another_and_what_they_may_send_arrives(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    # ``impostor`` runs in namespace b with namespace a's leaked Secret: it signs with a's keys as b.
    group, _ = placed(
        sidecars,
        tmp_path,
        {"orders": ("a", ring("a")), "impostor": ("b", ring("a")), "billing": ("c", ring("c"))},
        GOQ_RETRY_POLICY=QUICK,
    )
    for sidecar in group.values():
        sidecar.start()
    orders, impostor, billing = apps(group["orders"]), apps(group["impostor"]), apps(group["billing"])

    assert (await orders.send("billing.c", [b"a to c"]))[0].HasField("accepted")
    assert [m.payload for m in await billing.receive(1, within=30)] == [b"a to c"]

    assert (await impostor.send("billing.c", [b"as b with a's keys"]))[0].HasField("accepted")
    (refused,) = await poisoned(impostor, 1)
    assert refused.reason == "bad-signature", refused
    assert "claims to come from namespace 'b'" in refused.detail, refused.detail
    assert refused.attempts == 0  # poisoned when the first attempt was refused: never retried

    # Straight to the peer port: a's a->c key named as b's key does not verify; named as a's, it vouches for a only.
    a_to_c = pair_keys.derive(K1, "a", "c")
    from_b, to_c = Address("audit", "b"), Address("billing", "c")
    (results,) = await deliver(
        group["billing"], [forged(from_b, to_c, "k1@b", a_to_c), forged(from_b, to_c, "k1@a", a_to_c)]
    )
    assert [peer_pb2.Outcome.Name(r.outcome) for r in results] == ["OUTCOME_REJECTED"] * 2
    assert results[0].reason.startswith("bad-signature: signature does not match (key 'k1@b')"), results[0].reason
    assert results[1].reason.startswith("bad-signature: signed with the key of namespace 'a'"), results[1].reason
    assert metric(group["billing"], "goq_deliveries_refused_total") == {"bad-signature": 3}
    assert await billing.quiet(1.0) == []  # nothing forged reached the application

    # What a may still do after the attempts: send from a, as before.
    assert (await orders.send("billing.c", [b"a to c again"]))[0].HasField("accepted")
    assert [m.payload for m in await billing.receive(1, within=30)] == [b"a to c again"]
    assert (await orders.stats()).poisoned == 0


async def test_messages_stored_under_the_cluster_wide_ring_are_signed_again_and_delivered_after_the_switch(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    cluster_wide = {"k1": K1, "active": b"k1"}  # the master's copy, as GOQ_KEY_SCOPE=cluster gives every namespace
    group, volumes = placed(
        sidecars,
        tmp_path,
        {"orders": ("a", cluster_wide), "billing": ("c", cluster_wide)},
        GOQ_RETRY_POLICY=QUICK,
    )
    group["orders"].start()  # billing is down: everything stays in the outbox, signed with the cluster-wide k1
    orders = apps(group["orders"])
    durable = [f"durable {i}".encode() for i in range(20)]
    assert all(r.HasField("accepted") for r in await orders.send("billing.c", durable))
    receipt, digest = await send_large(orders, "billing.c", 3 * MiB)  # its body's HMAC is under the old k1 too
    assert receipt.state == "queued", receipt
    await asyncio.sleep(1.0)
    group["orders"].stop()

    volumes["orders"].write(ring("a"))  # the operator switched to GOQ_KEY_SCOPE=namespace
    volumes["billing"].write(ring("c"))
    group["orders"].start()  # reads its outbox back from MongoDB: every envelope names k1 of the old layout
    group["billing"].start()
    orders, billing = apps(group["orders"]), apps(group["billing"])

    got = await billing.receive(len(durable) + 1, within=60, distinct=True, ack=False)
    assert sorted({m.payload for m in got if not m.large}) == sorted(durable)
    (large,) = {m.id: m for m in got if m.large}.values()
    body = hashlib.sha256()
    async for chunk in billing.stub.ReadPayload(pb.ReadPayloadRequest(id=large.id)):
        body.update(chunk.data)
    assert body.hexdigest() == digest
    assert "signed again under key k1@a" in group["orders"].log()  # the large body's HMAC was made anew
    await billing.stub.Ack(pb.AckRequest(ids=list({m.id for m in got})))
    assert (await orders.stats()).poisoned == 0
    assert metric(group["billing"], "goq_deliveries_refused_total") == {}  # signed again before any attempt


async def test_a_rotation_of_the_master_under_traffic_delivers_everything_with_pair_keys(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    group, volumes = placed(
        sidecars, tmp_path, {"orders": ("a", ring("a")), "billing": ("c", ring("c"))}, GOQ_RETRY_POLICY=QUICK
    )
    for sidecar in group.values():
        sidecar.start()
    orders, billing = apps(group["orders"]), apps(group["billing"])
    both = {"k1": K1, "k2": K2}
    async with Traffic(orders, "billing.c", billing) as traffic:
        await asyncio.sleep(1.0)
        assert traffic.received, "nothing flowed before the rotation"
        volumes["orders"].write(ring("a", both, "k2"))  # the sender signs with k2 before the receiver has it
        await reloaded(group["orders"], 1)
        await asyncio.sleep(2.0)
        assert metric(group["billing"], "goq_deliveries_refused_total").get("unknown-key", 0) > 0
        volumes["billing"].write(ring("c", both, "k2"))
        await reloaded(group["billing"], 1)
        await asyncio.sleep(1.0)
        volumes["orders"].write(ring("a", {"k2": K2}, "k2"))  # k1 retired
        volumes["billing"].write(ring("c", {"k2": K2}, "k2"))
        await reloaded(group["billing"], 2)
        await asyncio.sleep(1.0)
        await traffic.finish()

    sent, lost = traffic.sent, traffic.lost
    print(f"{len(sent)} sent, {len(traffic.received)} received, lost {len(lost)}")
    assert not lost, f"{len(lost)} of {len(sent)} lost, e.g. {sorted(lost)[:5]}"
    assert (await orders.stats()).poisoned == 0
    assert metric(group["billing"], "goq_deliveries_refused_total").get("bad-signature", 0) == 0
