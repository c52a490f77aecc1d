"""With an OTLP endpoint set, two real sidecars export the spans of one message (send, its delivery attempt,
the hand-over to the application, the acknowledgement; for a large message also its storage by the receiver
and the application's download) to an OTLP receiver of the test's own, as one trace."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from . import test_large_messages as large
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


async def spans_of(
    collector: Receiver, message_id: str, names: set[str] = NAMES
) -> dict[str, tuple[str, trace_pb2.Span]]:
    for _ in range(200):
        found = collector.of(message_id)
        if set(found) == names:
            return found
        await asyncio.sleep(0.05)
    return collector.of(message_id)


async def traced_pair(sidecars: Sidecars, apps: Apps, port: int, **env: str) -> tuple[App, App]:
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    group = sidecars("orders", "billing", **otlp, **env)
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


LARGE_NAMES = NAMES | {"goq store", "goq download"}
CHUNK = 64 * 1024
SIZE = 3 * CHUNK + 3392  # four chunks, the last one short


async def send_large(app: App, to: str, payload: bytes) -> pb.SendResponse:
    """``SendLarge`` as the clients do it: the header, the sidecar's go-ahead, the data in pieces."""
    call = app.stub.SendLarge()
    await call.write(pb.LargeSendPart(header=pb.LargeSendHeader(to=to, size=len(payload))))
    assert (await call.initial_metadata()).get("goq-large") == "accepted"
    for start in range(0, len(payload), 50_000):
        await call.write(pb.LargeSendPart(data=payload[start : start + 50_000]))
    await call.done_writing()
    response: pb.SendResponse = await call
    return response


async def test_a_large_message_is_one_trace_from_its_upload_to_its_download(
    sidecars: Sidecars, apps: Apps, receiver: tuple[Receiver, int]
) -> None:
    collector, port = receiver
    orders, billing = await traced_pair(sidecars, apps, port, GOQ_LARGE_CHUNK_BYTES=str(CHUNK))
    payload = bytes(range(256)) * (SIZE // 256) + b"x" * (SIZE % 256)
    sent = await send_large(orders, "billing", payload)
    [got] = await billing.receive(1, within=30, ack=False)
    assert (got.id, got.large) == (sent.id, True)
    chunks = [c async for c in billing.stub.ReadPayload(pb.ReadPayloadRequest(id=got.id))]
    assert b"".join(c.data for c in chunks) == payload
    await billing.stub.Ack(pb.AckRequest(ids=[got.id]))

    spans = await spans_of(collector, sent.id, LARGE_NAMES)
    assert {name: identity for name, (identity, _) in spans.items()} == {
        "goq send": "orders.default",
        "goq deliver": "orders.default",
        "goq store": "billing.default",
        "goq receive": "billing.default",
        "goq download": "billing.default",
        "goq ack": "billing.default",
    }
    send = spans["goq send"][1]
    assert send.parent_span_id == b""  # the application gave no traceparent: the trace begins here
    for name in LARGE_NAMES - {"goq send"}:
        span = spans[name][1]
        assert span.trace_id == send.trace_id, name
        assert span.parent_span_id == send.span_id, name
    kinds = {name: span.kind for name, (_, span) in spans.items()}
    assert kinds["goq send"] == trace_pb2.Span.SPAN_KIND_PRODUCER
    assert kinds["goq deliver"] == trace_pb2.Span.SPAN_KIND_CLIENT
    assert kinds["goq store"] == trace_pb2.Span.SPAN_KIND_SERVER
    assert kinds["goq download"] == trace_pb2.Span.SPAN_KIND_INTERNAL
    for name in ("goq send", "goq deliver", "goq store", "goq receive", "goq download", "goq ack"):
        span = spans[name][1]
        assert attribute(span, "goq.large") is True, name
        assert attribute(span, "messaging.message.body.size") == SIZE, name
        assert attribute(span, "goq.large.chunks") == 4, name
    assert attribute(send, "goq.state") == "queued"
    deliver, store = spans["goq deliver"][1], spans["goq store"][1]
    assert (attribute(deliver, "goq.outcome"), attribute(deliver, "goq.large.offset")) == ("delivered", 0)
    assert (attribute(store, "goq.outcome"), attribute(store, "goq.large.offset")) == ("accepted", 0)
    assert attribute(store, "messaging.source.name") == "orders.default"
    assert attribute(spans["goq download"][1], "goq.large.bytes_read") == SIZE
    # The hops in the order they happen: the upload, then the transfer with the receiver's storage inside it,
    # then the download (which may begin while the receiver's span is still ending).
    assert send.end_time_unix_nano <= deliver.start_time_unix_nano
    assert deliver.start_time_unix_nano <= store.start_time_unix_nano <= deliver.end_time_unix_nano
    assert store.start_time_unix_nano <= spans["goq download"][1].start_time_unix_nano
    # The receiving application sees the traceparent that names the send span, to continue the trace.
    assert got.headers["traceparent"].startswith(f"00-{send.trace_id.hex()}-{send.span_id.hex()}-")


async def test_a_large_transfer_resumed_after_the_sender_restarts_stays_in_the_trace_and_shows_the_offset(
    sidecars: Sidecars, apps: Apps, receiver: tuple[Receiver, int]
) -> None:
    collector, port = receiver
    size = 96 * large.MiB
    otlp = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    spec = json.dumps({"maxMessageSize": "1Gi"})
    group = sidecars("orders", "billing", GOQ_QUEUE_SPEC=spec, GOQ_RETRY_POLICY=large.PATIENT, **otlp)
    orders, billing = group["orders"], apps(group["billing"])
    receipt, sent = await large.send_large(apps(orders), "billing", size)
    for _ in range(1200):  # until about half is across
        if (await billing.stats()).large_bytes_received >= size // 2:
            break
        await asyncio.sleep(0.05)
    orders.kill()  # its open deliver span dies with it; its send span was exported when the upload ended
    orders.start()  # the envelope, traceparent included, is read back from the large outbox
    message, got = await large.receive_large(billing, within=600)
    assert (message.id, got) == (receipt.id, sent)

    spans = await spans_of(collector, receipt.id, LARGE_NAMES)
    assert set(spans) == LARGE_NAMES
    send = spans["goq send"][1]
    stores = [s for identity, s in collector.spans if s.name == "goq store" and identity == "billing.default"]
    stores = sorted(
        (s for s in stores if attribute(s, "messaging.message.id") == receipt.id), key=lambda s: s.start_time_unix_nano
    )
    assert [attribute(s, "goq.outcome") for s in stores] == ["broken", "accepted"]
    assert attribute(stores[0], "goq.large.offset") == 0
    assert 0 < attribute(stores[1], "goq.large.offset") < size  # the second transfer sent only the rest
    assert stores[0].status.code == trace_pb2.Status.STATUS_CODE_ERROR
    deliver = spans["goq deliver"][1]  # the restarted sender's attempt
    assert attribute(deliver, "goq.large.offset") == attribute(stores[1], "goq.large.offset")
    assert attribute(deliver, "goq.outcome") == "delivered"
    for span in (*stores, deliver, spans["goq download"][1]):
        assert (span.trace_id, span.parent_span_id) == (send.trace_id, send.span_id), span.name
