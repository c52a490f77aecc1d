"""grpc.health.v1 on a real gRPC server on loopback, set up as the sidecar's application port is: NOT_SERVING
before readiness, SERVING while ready, NOT_SERVING for good once shutting down; Watch hears each change."""

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from goq.sidecar.apis.malformed import TolerantServer
from goq.sidecar.apis.standard_services import ServingStatus, add_standard_services

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def served() -> AsyncIterator[tuple[ServingStatus, grpc.aio.Channel]]:
    server = TolerantServer(grpc.aio.server())
    status = await add_standard_services(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield status, channel
    finally:
        await channel.close()
        await server.stop(grace=None)


async def check(channel: grpc.aio.Channel, service: str = "") -> int:
    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(answer.status)


async def test_the_server_is_not_serving_until_the_sidecar_is_ready(
    served: tuple[ServingStatus, grpc.aio.Channel],
) -> None:
    status, channel = served
    assert await check(channel) == NOT_SERVING
    assert await check(channel, "goq.v1.QueueManager") == NOT_SERVING
    await status.follow(True)
    assert await check(channel) == SERVING
    assert await check(channel, "goq.v1.QueueManager") == SERVING


async def test_a_watcher_hears_ready_then_shutting_down_and_nothing_revives_it(
    served: tuple[ServingStatus, grpc.aio.Channel],
) -> None:
    status, channel = served
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service="goq.v1.QueueManager"))
    assert (await watch.read()).status == NOT_SERVING
    await status.follow(True)
    assert (await watch.read()).status == SERVING
    await status.shutting_down()
    assert (await watch.read()).status == NOT_SERVING
    await status.follow(True)  # a late "ready" from a stopping sidecar changes nothing
    assert await check(channel) == NOT_SERVING
    watch.cancel()


async def test_an_undecodable_watch_request_is_refused_as_invalid_argument(
    served: tuple[ServingStatus, grpc.aio.Channel],
) -> None:
    _, channel = served
    raw = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=bytes, response_deserializer=bytes)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _ in raw(b"\xff\xff\xff", timeout=5):
            pass
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
