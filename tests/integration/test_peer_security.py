"""Deliveries are verified before anything else: forged, tampered and replayed messages sent straight
to a sidecar's peer port are refused and counted, and never reach its application."""

import time
from collections.abc import Callable

import grpc

from goq.api.v1 import envelope_pb2, peer_pb2, peer_pb2_grpc
from goq.devenv.sidecars import SidecarProcess, hmac_keys
from goq.identity import Address
from goq.messages import Message, new_message_id
from goq.signing import Keyring

from .conftest import KEY, App

OLD_KEY = b"o" * 32
Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


def signed(payload: bytes, *, key_id: str = "k1", key: bytes = KEY, to: str = "billing") -> envelope_pb2.SignedEnvelope:
    message = Message(
        id=new_message_id(),
        source=Address("orders", "default"),
        destination=Address(to, "default"),
        created_at_ms=int(time.time() * 1000),
        payload=payload,
    )
    body = message.encode()
    key_id, signature = Keyring({key_id: key}, key_id).sign(body)
    return envelope_pb2.SignedEnvelope(body=body, key_id=key_id, signature=signature, attempt=1)


async def deliver(
    sidecar: SidecarProcess, *batches: list[envelope_pb2.SignedEnvelope]
) -> list[list[peer_pb2.MessageResult]]:
    async with grpc.aio.insecure_channel(sidecar.peer_target) as channel:
        call = peer_pb2_grpc.PeerStub(channel).Deliver()
        answers = []
        for seq, batch in enumerate(batches, 1):
            await call.write(peer_pb2.DeliverBatch(seq=seq, messages=batch))
            answer = await call.read()
            assert answer.seq == seq
            answers.append(list(answer.results))
        await call.done_writing()
        return answers


async def test_forged_and_tampered_deliveries_are_refused_and_counted(sidecars: Sidecars, apps: Apps) -> None:
    billing = sidecars("billing")["billing"]
    good = signed(b"genuine")
    tampered_payload = signed(b"pay 10 EUR")
    forged_body = Message.decode(tampered_payload.body)
    forged_body.payload = b"pay 10000 EUR"
    tampered_payload.body = forged_body.encode()
    tampered_signature = signed(b"x")
    tampered_signature.signature = bytes([tampered_signature.signature[0] ^ 1]) + tampered_signature.signature[1:]
    unknown_key = signed(b"y", key_id="k9", key=b"z" * 32)
    garbage = envelope_pb2.SignedEnvelope(
        body=b"\xff\xfe\xfd", key_id="k1", signature=Keyring({"k1": KEY}, "k1").sign(b"\xff\xfe\xfd")[1]
    )
    elsewhere = signed(b"not for billing", to="shipping")

    (results,) = await deliver(billing, [good, tampered_payload, tampered_signature, unknown_key, garbage, elsewhere])

    outcomes = [(peer_pb2.Outcome.Name(r.outcome), r.reason.split(":")[0]) for r in results]
    assert outcomes == [
        ("OUTCOME_ACCEPTED", ""),
        ("OUTCOME_REJECTED", "bad-signature"),
        ("OUTCOME_REJECTED", "bad-signature"),
        ("OUTCOME_RETRY_LATER", "unknown-key"),  # perhaps a key not propagated here yet: the sender retries
        ("OUTCOME_REJECTED", "malformed"),
        ("OUTCOME_REJECTED", "wrong-destination"),
    ]
    app = apps(billing)
    got = await app.receive(1, within=30)
    assert [m.payload for m in got] == [b"genuine"]
    assert await app.quiet(0.5) == []
    stats = await app.stats()
    assert (stats.refused, stats.received) == (5, 1)


async def test_a_replayed_delivery_reaches_the_application_once(sidecars: Sidecars, apps: Apps) -> None:
    billing = sidecars("billing")["billing"]
    envelope = signed(b"once")
    first, again = await deliver(billing, [envelope], [envelope])
    assert first[0].outcome == peer_pb2.OUTCOME_ACCEPTED
    assert again[0].outcome == peer_pb2.OUTCOME_DUPLICATE
    app = apps(billing)
    assert [m.payload for m in await app.receive(1, within=30)] == [b"once"]
    # Acknowledged, then replayed once more: still recognised (a tombstone keeps the id).
    (late,) = await deliver(billing, [envelope])
    assert late[0].outcome == peer_pb2.OUTCOME_DUPLICATE
    assert await app.quiet(0.5) == []
    assert (await app.stats()).duplicates == 2


async def test_during_key_rotation_messages_signed_with_the_older_key_are_accepted(
    sidecars: Sidecars, apps: Apps
) -> None:
    keys = hmac_keys({"old": OLD_KEY, "new": KEY})
    billing = sidecars("billing", GOQ_HMAC_KEYS=keys, GOQ_HMAC_ACTIVE="new")["billing"]
    (results,) = await deliver(
        billing, [signed(b"from before", key_id="old", key=OLD_KEY), signed(b"after", key_id="new")]
    )
    assert [r.outcome for r in results] == [peer_pb2.OUTCOME_ACCEPTED] * 2
    assert sorted(m.payload for m in await apps(billing).receive(2, within=30)) == [b"after", b"from before"]


async def test_bytes_that_are_not_a_delivery_batch_are_refused_as_invalid(sidecars: Sidecars) -> None:
    billing = sidecars("billing")["billing"]
    async with grpc.aio.insecure_channel(billing.peer_target) as channel:
        call = channel.stream_stream("/goq.v1.Peer/Deliver", request_serializer=bytes, response_deserializer=bytes)()
        await call.write(b"\xff\xff\xff")
        assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "the request is not a valid protobuf message" in (await call.details() or "")
