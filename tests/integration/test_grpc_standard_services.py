"""A real sidecar's application port answers grpc.health.v1 (following readiness) and server reflection, as
``grpc_health_probe`` and ``grpcurl`` use them: with the standard client stubs, nothing of GoQ's on the client."""

import asyncio
import urllib.request
from collections.abc import Callable

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from goq.devenv.sidecars import SidecarProcess

Sidecars = Callable[..., dict[str, SidecarProcess]]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def readyz(sidecar: SidecarProcess) -> int:
    try:
        with urllib.request.urlopen(f"{sidecar.health_url}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_a_ready_sidecar_is_serving_for_the_whole_server_and_for_the_queue_manager(sidecars: Sidecars) -> None:
    orders = sidecars("orders")["orders"]
    async with grpc.aio.insecure_channel(orders.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "goq.v1.QueueManager"):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == SERVING, service
        assert readyz(orders) == 200
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await health.Check(health_pb2.HealthCheckRequest(service="goq.v1.Nothing"), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_watcher_hears_not_serving_as_soon_as_the_sidecar_begins_to_shut_down(sidecars: Sidecars) -> None:
    orders = sidecars("orders")["orders"]
    async with grpc.aio.insecure_channel(orders.grpc_target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
        first = await watch.read()
        assert first.status == SERVING
        stopping = asyncio.get_running_loop().run_in_executor(None, orders.stop)  # SIGTERM, then a clean stop
        second = await watch.read()
        assert second.status == NOT_SERVING
        await stopping
        assert orders.process is None  # it stopped cleanly after telling the watcher


def test_reflection_lists_the_services_and_resolves_the_queue_managers_methods_and_messages(
    sidecars: Sidecars,
) -> None:
    """As ``grpcurl list``, ``grpcurl describe`` and a call made from descriptors fetched off the server."""
    orders = sidecars("orders")["orders"]
    with grpc.insecure_channel(orders.grpc_target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert set(database.get_services()) == {
            "goq.v1.QueueManager",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        }
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("goq.v1.QueueManager")
        methods = {m.name: m for m in service.methods}
        assert {"Send", "SendStream", "Receive", "Ack", "Nack", "Stats", "ListPoisoned", "Redrive"} <= set(methods)
        send = methods["Send"].input_type
        assert send.full_name == "goq.v1.SendRequest"
        assert {"to", "payload", "persistent", "headers", "id"} <= set(send.fields_by_name)

        stats = methods["Stats"]
        request = message_factory.GetMessageClass(stats.input_type)
        response = message_factory.GetMessageClass(stats.output_type)
        call = channel.unary_unary(
            f"/{service.full_name}/{stats.name}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        answer = call(request(), timeout=5)
        assert answer.identity == "orders.default"
