"""Bad input to the application API gets a clear error and the right status; nothing is accepted."""

from collections.abc import Callable

import grpc
import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"to": "", "payload": b"x"}, 'destination must be "<identity>" or "<identity>.<namespace>", got nothing'),
        ({"to": "Billing", "payload": b"x"}, "destination identity 'Billing' must be lower case"),
        ({"to": "billing.shop.eu", "payload": b"x"}, 'has more than one "."'),
        ({"to": "billing", "payload": b"x" * 2049}, "payload is 2049 bytes; the limit is 2048 bytes"),
        ({"to": "billing", "payload": b"x", "id": "has space"}, "message id must be 1 to 128 printable ASCII"),
        ({"to": "billing", "payload": b"x", "headers": {"bad name": "v"}}, "header name 'bad name'"),
    ],
)
async def test_bad_sends_are_invalid_arguments_with_the_reason(
    request_fields: dict[str, object], message: str, sidecars: Sidecars, apps: Apps
) -> None:
    app = apps(sidecars("orders", GOQ_MAX_PAYLOAD_BYTES="2048")["orders"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.stub.Send(pb.SendRequest(**request_fields))  # type: ignore[arg-type]
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (refused.value.details() or "")
    assert (await app.stats()).sent == 0


async def test_in_a_stream_each_bad_message_gets_its_own_error_and_the_good_ones_go(
    sidecars: Sidecars, apps: Apps
) -> None:
    app = apps(sidecars("orders")["orders"])

    async def one_batch():  # type: ignore[no-untyped-def]
        yield pb.SendBatch(messages=[pb.SendRequest(to="billing", payload=b"ok"), pb.SendRequest(to="", payload=b"no")])

    (answer,) = [a async for a in app.stub.SendStream(one_batch())]
    assert answer.results[0].WhichOneof("result") == "accepted"
    assert answer.results[1].error.code == "INVALID_ARGUMENT"
    assert (await app.stats()).sent == 1


async def test_sending_the_same_id_twice_sends_once(sidecars: Sidecars, apps: Apps) -> None:
    group = sidecars("orders", "billing")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    first = await orders.stub.Send(pb.SendRequest(to="billing", payload=b"charge", id="order-42"))
    again = await orders.stub.Send(pb.SendRequest(to="billing", payload=b"charge", id="order-42"))
    assert (first.id, again.id) == ("order-42", "order-42")
    got = await billing.receive(1, within=60)
    assert [m.id for m in got] == ["order-42"]
    assert await billing.quiet(0.5) == []


async def test_acknowledging_or_rejecting_an_unknown_id_says_so(sidecars: Sidecars, apps: Apps) -> None:
    app = apps(sidecars("orders")["orders"])
    assert list((await app.stub.Ack(pb.AckRequest(ids=["nope"]))).unknown) == ["nope"]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.stub.Nack(pb.NackRequest(id="nope", requeue=True))
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert "message 'nope' is not leased to the application" in (refused.value.details() or "")


async def test_persistent_sends_without_mongodb_are_refused_as_unavailable(sidecars: Sidecars, apps: Apps) -> None:
    app = apps(sidecars("orders", GOQ_MONGODB_URI="", GOQ_QUEUE_SPEC='{"poisonQueue": {"type": "log"}}')["orders"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await app.stub.Send(pb.SendRequest(to="billing", payload=b"x"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "persistent messages need MongoDB" in (refused.value.details() or "")
    transient = await app.stub.Send(pb.SendRequest(to="billing", payload=b"x", persistent=False))
    assert transient.state == "queued"


@pytest.mark.parametrize("junk", [b"\xff\xff\xff", b"\x0a\x05ab"])
async def test_bytes_that_are_not_a_request_message_are_invalid_arguments(
    junk: bytes, sidecars: Sidecars, apps: Apps
) -> None:
    app = apps(sidecars("orders")["orders"])
    raw = app.channel.unary_unary("/goq.v1.QueueManager/Send", request_serializer=bytes, response_deserializer=bytes)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await raw(junk)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "/goq.v1.QueueManager/Send: the request is not a valid protobuf message" in (refused.value.details() or "")
    assert (await app.stats()).sent == 0
