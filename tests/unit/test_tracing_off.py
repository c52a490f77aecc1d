"""Tracing is off unless an OTLP endpoint is set, and then costs nothing: OpenTelemetry is not even loaded,
neither by the small messages' path nor by the large messages'."""

import subprocess
import sys
from pathlib import Path

import pytest

from goq.devenv.ports import free_ports
from goq.devenv.sidecars import hmac_keys
from goq.sidecar.core.tracing import tracing_from_env

LARGE_ROUND_TRIP = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # any import of it from here on fails
import grpc
from goq.api.v1 import queue_manager_pb2 as pb, queue_manager_pb2_grpc
from goq.sidecar.runtime import Sidecar
from goq.sidecar.settings import SidecarSettings

ENVS = {envs!r}
PAYLOAD = bytes(range(256)) * 1000  # 256,000 bytes: four chunks of 64 KiB


async def main() -> None:
    sidecars = [Sidecar(SidecarSettings.from_env(env)) for env in ENVS]
    for sidecar in sidecars:
        await sidecar.start()
    assert all(sidecar.tracing is None and sidecar.large.tracing is None for sidecar in sidecars)
    try:
        async with (
            grpc.aio.insecure_channel(ENVS[0]["GOQ_GRPC_LISTEN"]) as orders_channel,
            grpc.aio.insecure_channel(ENVS[1]["GOQ_GRPC_LISTEN"]) as billing_channel,
        ):
            orders = queue_manager_pb2_grpc.QueueManagerStub(orders_channel)
            billing = queue_manager_pb2_grpc.QueueManagerStub(billing_channel)
            call = orders.SendLarge()
            header = pb.LargeSendHeader(to="billing", persistent=False, size=len(PAYLOAD))
            await call.write(pb.LargeSendPart(header=header))
            await call.write(pb.LargeSendPart(data=PAYLOAD))
            await call.done_writing()
            sent = await call
            stream = billing.Receive(pb.ReceiveRequest(max_in_flight=1))
            batch = await asyncio.wait_for(stream.read(), 30)
            stream.cancel()
            [got] = batch.messages
            assert (got.id, got.large) == (sent.id, True)
            chunks = [c.data async for c in billing.ReadPayload(pb.ReadPayloadRequest(id=got.id))]
            assert b"".join(chunks) == PAYLOAD
            await billing.Ack(pb.AckRequest(ids=[got.id]))
            print("traceparent" in got.headers, len(chunks))
    finally:
        for sidecar in sidecars:
            await sidecar.stop()
    print(sorted(m for m in sys.modules if m.startswith("opentelemetry") and sys.modules[m] is not None))


asyncio.run(main())
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120)


def test_without_an_endpoint_there_is_no_tracer() -> None:
    assert tracing_from_env("orders.default", "orders-0", {}) is None
    assert tracing_from_env("orders.default", "orders-0", {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) is None


def test_the_sidecar_runtime_does_not_load_opentelemetry_when_tracing_is_off() -> None:
    code = (
        "import sys, goq.cli.sidecar, goq.sidecar.runtime;"
        " from goq.sidecar.core.tracing import tracing_from_env;"
        " assert tracing_from_env('orders.default', 'orders-0', {}) is None;"
        " print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    done = run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_endpoint_without_opentelemetry_installed_stops_the_start_saying_what_to_install() -> None:
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"  # as if the extra were not installed
        "from goq.sidecar.core.tracing import tracing_from_env\n"
        "tracing_from_env('orders.default', 'orders-0', {'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:4317'})\n"
    )
    done = run(code)
    assert done.returncode == 1
    assert "ConfigError" in done.stderr
    assert "pip install 'goq-sidecar[tracing]'" in done.stderr


def test_an_endpoint_with_opentelemetry_installed_gives_a_tracer() -> None:
    tracing = tracing_from_env("orders.default", "orders-0", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert tracing is not None
    tracing.close()  # nothing was recorded: nothing to send to the (unreachable) endpoint


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
def test_either_standard_endpoint_variable_turns_it_on(variable: str) -> None:
    tracing = tracing_from_env("orders.default", "orders-0", {variable: "http://127.0.0.1:9"})
    assert tracing is not None
    tracing.close()


def test_a_large_message_goes_between_two_untraced_sidecars_without_opentelemetry(tmp_path: Path) -> None:
    """The whole large path (upload, transfer, storage, download) runs with tracing off and OpenTelemetry
    unimportable: nothing on it reaches for a tracer, and no ``traceparent`` is added to the message."""
    ports = free_ports(8)
    peers = f"orders.default=127.0.0.1:{ports[0]},billing.default=127.0.0.1:{ports[4]}"
    envs = [
        {
            "GOQ_IDENTITY": identity,
            "GOQ_NAMESPACE": "default",
            "GOQ_INSTANCE": f"{identity}-0",
            "GOQ_HMAC_KEYS": hmac_keys({"k1": b"k" * 32}),
            "GOQ_RESOLVER": "static",
            "GOQ_PEERS": peers,
            "GOQ_LARGE_CHUNK_BYTES": str(64 * 1024),
            "GOQ_SPILL_DIR": str(tmp_path / identity),
            "GOQ_PEER_LISTEN": f"127.0.0.1:{ports[base]}",
            "GOQ_GRPC_LISTEN": f"127.0.0.1:{ports[base + 1]}",
            "GOQ_REST_LISTEN": f"127.0.0.1:{ports[base + 2]}",
            "GOQ_HEALTH_LISTEN": f"127.0.0.1:{ports[base + 3]}",
        }
        for identity, base in (("orders", 0), ("billing", 4))
    ]
    done = run(LARGE_ROUND_TRIP.format(envs=envs))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["False 4", "[]"]
