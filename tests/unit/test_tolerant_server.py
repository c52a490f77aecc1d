"""``TolerantServer`` on a real gRPC server on loopback: undecodable requests are refused with INVALID_ARGUMENT on
methods registered by name and on those a generic handler serves, as the interceptor it replaces did."""

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc
from goq.sidecar.apis.malformed import TolerantServer

ECHO = "/test.Echo/Echo"


async def _send(request: pb.SendRequest, context: Any) -> pb.SendResponse:
    return pb.SendResponse(id=f"to {request.to}", state="queued")


async def _echo(request: pb.SendRequest, context: Any) -> pb.SendRequest:
    return request


@pytest.fixture
async def served() -> AsyncIterator[tuple[grpc.aio.Channel, list[tuple[str, str]]]]:
    noticed: list[tuple[str, str]] = []
    server = TolerantServer(grpc.aio.server(), lambda method, error: noticed.append((method, error)))
    send = grpc.unary_unary_rpc_method_handler(
        _send, request_deserializer=pb.SendRequest.FromString, response_serializer=pb.SendResponse.SerializeToString
    )
    server.add_registered_method_handlers("goq.v1.QueueManager", {"Send": send})  # as generated code registers
    echo = grpc.unary_unary_rpc_method_handler(
        _echo, request_deserializer=pb.SendRequest.FromString, response_serializer=pb.SendRequest.SerializeToString
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Echo", {"Echo": echo})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, noticed
    finally:
        await channel.close()
        await server.stop(grace=None)


async def test_a_well_formed_request_reaches_the_registered_method(
    served: tuple[grpc.aio.Channel, list[tuple[str, str]]],
) -> None:
    channel, noticed = served
    answer = await queue_manager_pb2_grpc.QueueManagerStub(channel).Send(pb.SendRequest(to="billing"), timeout=5)
    assert (answer.id, answer.state, noticed) == ("to billing", "queued", [])


async def test_an_undecodable_request_to_a_registered_method_is_refused_and_noticed(
    served: tuple[grpc.aio.Channel, list[tuple[str, str]]],
) -> None:
    channel, noticed = served
    raw = channel.unary_unary("/goq.v1.QueueManager/Send", request_serializer=bytes, response_deserializer=bytes)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await raw(b"\xff\xff\xff", timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in (refused.value.details() or "")
    assert [method for method, _ in noticed] == ["/goq.v1.QueueManager/Send"]


async def test_a_generic_handlers_methods_refuse_undecodable_requests_and_serve_good_ones(
    served: tuple[grpc.aio.Channel, list[tuple[str, str]]],
) -> None:
    channel, noticed = served
    raw = channel.unary_unary(ECHO, request_serializer=bytes, response_deserializer=bytes)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await raw(b"\xff\xff\xff", timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        await raw(pb.SendRequest(to="x").SerializeToString(), timeout=5) == pb.SendRequest(to="x").SerializeToString()
    )
    assert [method for method, _ in noticed] == [ECHO]
