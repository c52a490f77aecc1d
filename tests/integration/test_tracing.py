"""With an OTLP endpoint set, two real sidecars export the spans of one message (send, its delivery attempt,
the hand-over to the application, the acknowledgement) to an OTLP receiver of the test's own, as one trace."""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
NAMES = {"goq send", "goq deliver", "goq receive", "goq ack"}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: keeps every span with the ``goq.identity`` of the sidecar that sent it."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, trace_pb2.Span]] = []

    async def Export(  # noqa: N802 - the gRPC method's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend((resource.get("goq.identity", ""), s) for s in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def of(self, message_id: str) -> dict[str, tuple[str, trace_pb2.Span]]:
        """The spans of one message, by name (the last of each)."""
        found = {}
        for identity, span in self.spans:
            attributes = {a.key: a.value for a in span.attributes}
            if "messaging.message.id" in attributes and attributes["messaging.message.id"].string_value == message_id:
                found[span.name] = (identity, span)
        return found


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    server = grpc.aio.server()
    collector = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield collector, port
    finally:
        await server.stop(grace=None)


def attribute(span: trace_pb2.Span, key: str) -> Any:
    [value] = [a.value for a in span.attributes if a.key == key]
    return getattr(value, value.WhichOneof("value"))


async def spans_of(collector: Receiver, message_id: str) -> dict[str, tuple[str, trace_pb2.Span]]:
    for _ in range(200):
        found = collector.of(message_id)
        if set(found) == NAMES:
            return found
        await asyncio.sleep(0.05)
    return collector.of(message_id)


async def traced_pair(sidecars: Sidecars, apps: Apps, port: int) -> tuple[App, App]:
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    group = sidecars("orders", "billing", **otlp)
    return apps(group["orders"]), apps(group["billing"])


async def test_one_message_is_one_trace_across_the_two_sidecars(
    sidecars: Sidecars, apps: Apps, receiver: tuple[Receiver, int]
) -> None:
    collector, port = receiver
    orders, billing = await traced_pair(sidecars, apps, port)
    [sent] = await orders.send("billing", [b"traced"])
    [got] = await billing.receive(1, within=30)  # and acknowledged
    message_id = sent.accepted.id
    assert got.id == message_id

    spans = await spans_of(collector, message_id)
    assert set(spans) == NAMES
    send = spans["goq send"][1]
    assert {name: identity for name, (identity, _) in spans.items()} == {
        "goq send": "orders.default",
        "goq deliver": "orders.default",
        "goq receive": "billing.default",
        "goq ack": "billing.default",
    }
    assert send.parent_span_id == b""  # the application gave no traceparent: the trace begins here
    for name in ("goq deliver", "goq receive", "goq ack"):
        span = spans[name][1]
        assert span.trace_id == send.trace_id, name
        assert span.parent_span_id == send.span_id, name
    deliver = spans["goq deliver"][1]
    assert attribute(deliver, "goq.outcome") == "delivered"
    assert attribute(deliver, "goq.attempt") == 1
    assert send.kind == trace_pb2.Span.SPAN_KIND_PRODUCER
    assert spans["goq receive"][1].kind == trace_pb2.Span.SPAN_KIND_CONSUMER
    # The receiving application sees the traceparent that names the send span, to continue the trace.
    assert got.headers["traceparent"].startswith(f"00-{send.trace_id.hex()}-{send.span_id.hex()}-")


async def test_an_applications_traceparent_is_the_parent_of_every_span_and_arrives_unchanged(
    sidecars: Sidecars, apps: Apps, receiver: tuple[Receiver, int]
) -> None:
    collector, port = receiver
    orders, billing = await traced_pair(sidecars, apps, port)
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traceparent = f"00-{trace_id}-{parent}-01"
    request = pb.SendRequest(to="billing", payload=b"x", headers={"traceparent": traceparent})
    sent = await orders.stub.Send(request)
    [got] = await billing.receive(1, within=30)
    assert got.headers == {"traceparent": traceparent}

    spans = await spans_of(collector, sent.id)
    assert set(spans) == NAMES
    for name, (_, span) in spans.items():
        assert span.trace_id.hex() == trace_id, name
        assert span.parent_span_id.hex() == parent, name


async def test_a_failed_attempt_and_the_retry_that_delivers_are_spans_of_the_same_trace(
    sidecars: Sidecars, apps: Apps, receiver: tuple[Receiver, int]
) -> None:
    collector, port = receiver
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    group = sidecars("orders", "billing", start=False, **otlp)
    group["orders"].start()  # billing is not up yet: the first attempt fails
    orders = apps(group["orders"])
    [sent] = await orders.send("billing", [b"later"])
    message_id = sent.accepted.id
    deadline = asyncio.get_running_loop().time() + 60  # an attempt may wait out its attemptTimeout on a busy machine
    while not any(s.name == "goq deliver" for _, s in collector.of(message_id).values()):
        assert asyncio.get_running_loop().time() < deadline, "no delivery attempt was traced while billing was down"
        await asyncio.sleep(0.05)
    group["billing"].start()
    billing = apps(group["billing"])
    assert len(await billing.receive(1, within=60)) == 1
    await spans_of(collector, message_id)

    def attempts_now() -> list[trace_pb2.Span]:
        spans = [s for _, s in collector.spans if s.name == "goq deliver"]
        return [s for s in spans if attribute(s, "messaging.message.id") == message_id]

    # The delivered attempt's span ends when orders hears the answer, which may be after billing received it.
    deadline = asyncio.get_running_loop().time() + 30
    while not any(attribute(s, "goq.outcome") == "delivered" for s in attempts_now()):
        assert asyncio.get_running_loop().time() < deadline, "the delivered attempt was never traced"
        await asyncio.sleep(0.05)
    attempts = sorted(attempts_now(), key=lambda s: int(attribute(s, "goq.attempt")))
    outcomes = [(attribute(s, "goq.attempt"), attribute(s, "goq.outcome")) for s in attempts]
    assert outcomes[0] == (1, "failed"), outcomes
    assert outcomes[-1][1] == "delivered"
    assert [n for n, _ in outcomes] == list(range(1, len(outcomes) + 1))
    assert len({s.trace_id for s in attempts}) == 1
    assert attempts[0].status.code == trace_pb2.Status.STATUS_CODE_ERROR
