"""The tracer's rules, with the SDK's in-memory exporter: which requests get a ``traceparent``, what each span's
parent is, how an attempt span ends, what a large message's spans say, and that a tracer fault never reaches
the engine."""

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from goq.api.v1 import peer_pb2
from goq.identity import Address
from goq.messages import MAX_HEADERS, LargeRef, Message
from goq.sidecar.core.engine import SendReceipt, SendRequest
from goq.sidecar.core.tracing_otel import OtelTracing
from goq.sidecar.domain.errors import PayloadTooLargeError
from goq.sidecar.domain.records import Incoming, Outgoing
from goq.sidecar.large.uploading import LargeSend

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def traced() -> Iterator[tuple[OtelTracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OtelTracing(provider, "orders.default"), exporter
    provider.shutdown()


def outgoing(message_id: str, headers: dict[str, str]) -> Outgoing:
    source, destination = Address("orders", "default"), Address("billing", "default")
    body = Message(message_id, source, destination, 0, b"x", headers=headers).encode()
    return Outgoing(message_id, destination, body, "k1", b"sig", True, 0.0)


def test_a_request_without_traceparent_gets_one_naming_its_send_span(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    bare, other = SendRequest("billing", b"x"), SendRequest("billing", b"x", headers={"kind": "invoice"})
    done = tracing.sending([bare, other])
    done([SendReceipt("m1", "queued"), SendReceipt("m2", "queued")])
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["goq send", "goq send"]
    for request, span in zip([bare, other], spans, strict=True):
        assert request.headers is not None
        assert request.headers["traceparent"].startswith(
            f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-"
        )
        assert span.parent is None
    assert other.headers is not None
    assert other.headers["kind"] == "invoice"


def test_an_applications_traceparent_is_kept_and_is_the_send_spans_parent(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    request = SendRequest("billing", b"x", headers={"traceparent": PARENT})
    tracing.sending([request])([SendReceipt("m1", "queued")])
    assert request.headers == {"traceparent": PARENT}
    [span] = exporter.get_finished_spans()
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"


def test_no_header_is_added_where_it_would_break_the_limit_or_hide_invalid_headers(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, _ = traced
    full = {f"h{i}": "v" for i in range(MAX_HEADERS)}
    at_limit = SendRequest("billing", b"x", headers=dict(full))
    invalid = SendRequest("billing", b"x", headers=["not", "a", "map"])  # type: ignore[arg-type]
    tracing.sending([at_limit, invalid])([None, None])
    assert at_limit.headers == full  # a 65th header would have the send refused
    assert invalid.headers == ["not", "a", "map"]  # still refused as the application wrote it


def test_an_attempt_span_runs_from_the_write_to_the_outcome_and_a_late_outcome_is_ignored(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    item = outgoing("m1", {"traceparent": PARENT})
    tracing.attempting([item], "127.0.0.1:7702")
    assert exporter.get_finished_spans() == ()
    tracing.attempted([item], "failed", "no answer within attemptTimeout")
    tracing.attempted([item], "rejected", "max-attempts")  # poisoned after that failure: no second span
    [span] = exporter.get_finished_spans()
    assert span.name == "goq deliver"
    assert span.attributes is not None
    assert span.attributes["goq.outcome"] == "failed"
    assert span.attributes["goq.attempt"] == 1
    assert span.status.description == "no answer within attemptTimeout"
    assert span.parent is not None
    assert f"{span.parent.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_tracer_fault_is_logged_not_raised(
    traced: tuple[OtelTracing, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    tracing, exporter = traced
    tracing.attempting([object()], "127.0.0.1:7702")  # type: ignore[list-item]
    assert "tracing: attempting failed" in caplog.text
    assert exporter.get_finished_spans() == ()


# Large messages.

LARGE = LargeRef(size=200_000, mac=b"m" * 32, key_id="k1", chunk_size=65_536)


def large_outgoing(message_id: str, headers: dict[str, str]) -> Outgoing:
    source, destination = Address("orders", "default"), Address("billing", "default")
    body = Message(message_id, source, destination, 0, b"", headers=headers, large=LARGE).encode()
    return Outgoing(message_id, destination, body, "k1", b"sig", True, 0.0)


def large_incoming(message_id: str, headers: dict[str, str]) -> Incoming:
    source, destination = Address("orders", "default"), Address("billing", "default")
    message = Message(message_id, source, destination, 0, b"", headers=headers, large=LARGE)
    return Incoming(f"{source}|{message_id}", message, message.encode(), "k1", b"sig", 0.0, deliveries=1)


def parent_of(span: ReadableSpan) -> str:
    assert span.parent is not None, span.name
    return f"00-{span.parent.trace_id:032x}-{span.parent.span_id:016x}-01"


def test_a_large_send_span_names_the_traceparent_it_adds_and_ends_with_the_size_and_chunk_count(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    request = LargeSend("billing", headers={"kind": "scan"})
    done = tracing.sending_large(request)
    assert request.headers is not None
    assert request.headers["kind"] == "scan"
    stored = large_outgoing("m1", request.headers)  # the uploader signs the headers with the traceparent
    done(stored)
    [span] = exporter.get_finished_spans()
    assert (span.name, span.kind, span.parent) == ("goq send", SpanKind.PRODUCER, None)
    assert request.headers["traceparent"].startswith(f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-")
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == "m1"
    assert span.attributes["goq.state"] == "queued"
    assert span.attributes["goq.large"] is True
    assert span.attributes["messaging.message.body.size"] == 200_000
    assert span.attributes["goq.large.chunks"] == 4  # three of 65,536 bytes and one of 3,392


def test_a_refused_large_send_ends_its_span_with_the_refusal(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    request = LargeSend("billing", headers={"traceparent": PARENT})
    tracing.sending_large(request)(PayloadTooLargeError("payload is over 100 bytes"))
    assert request.headers == {"traceparent": PARENT}
    [span] = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "payload is over 100 bytes"
    assert parent_of(span) == PARENT


def test_a_large_delivery_attempt_carries_the_body_and_where_the_transfer_resumed(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    item = large_outgoing("m1", {"traceparent": PARENT})
    tracing.attempting([item], "127.0.0.1:7702")
    tracing.resuming(item, 131_072)
    tracing.attempted([item], "delivered")
    [span] = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("goq deliver", SpanKind.CLIENT)
    assert parent_of(span) == PARENT
    assert span.attributes is not None
    assert span.attributes["goq.large.offset"] == 131_072
    assert span.attributes["goq.large.chunks"] == 4
    assert span.attributes["goq.outcome"] == "delivered"


@pytest.mark.parametrize(
    ("result", "outcome", "error"),
    [
        (peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_ACCEPTED), "accepted", None),
        (peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_DUPLICATE), "duplicate", None),
        (
            peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_REJECTED, reason="bad-signature: body"),
            "rejected",
            "bad-signature: body",
        ),
        (None, "broken", "the transfer broke before an answer"),
    ],
    ids=["accepted", "duplicate", "rejected", "broken"],
)
def test_the_receivers_store_span_is_a_child_of_the_envelopes_traceparent_and_ends_with_the_answer(
    traced: tuple[OtelTracing, InMemorySpanExporter],
    result: peer_pb2.MessageResult | None,
    outcome: str,
    error: str | None,
) -> None:
    tracing, exporter = traced
    item = large_outgoing("m1", {"traceparent": PARENT})
    tracing.storing_large(item.body)(result, 65_536)
    [span] = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("goq store", SpanKind.SERVER)
    assert parent_of(span) == PARENT
    assert span.attributes is not None
    assert span.attributes["messaging.message.id"] == "m1"
    assert span.attributes["messaging.source.name"] == "orders.default"
    assert span.attributes["messaging.message.body.size"] == 200_000
    assert span.attributes["goq.large.offset"] == 65_536
    assert span.attributes["goq.outcome"] == outcome
    assert span.status.description == error
    assert (span.status.status_code == StatusCode.ERROR) == (error is not None)


def test_an_undecodable_envelope_still_gets_a_store_span_without_a_parent(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    tracing.storing_large(b"\xff\xff not an envelope")(None, 0)
    [span] = exporter.get_finished_spans()
    assert span.parent is None
    assert span.attributes is not None
    assert span.attributes["goq.outcome"] == "broken"


def test_a_download_span_counts_the_bytes_read_from_the_offset(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    item = large_incoming("m1", {"traceparent": PARENT})
    tracing.downloading(item, 65_536)(134_464, None)
    tracing.downloading(item, 0)(10, ConnectionResetError("reset by peer"))
    complete, broken = exporter.get_finished_spans()
    assert (complete.name, complete.kind) == ("goq download", SpanKind.INTERNAL)
    assert parent_of(complete) == PARENT
    assert complete.attributes is not None
    assert complete.attributes["goq.large.offset"] == 65_536
    assert complete.attributes["goq.large.bytes_read"] == 134_464
    assert complete.status.status_code == StatusCode.UNSET
    assert broken.status.description == "reset by peer"


def test_the_hand_over_and_ack_of_a_large_message_carry_its_size(
    traced: tuple[OtelTracing, InMemorySpanExporter],
) -> None:
    tracing, exporter = traced
    item = large_incoming("m1", {"traceparent": PARENT})
    tracing.received([item])
    tracing.acknowledged([item])
    for span in exporter.get_finished_spans():
        assert span.attributes is not None
        assert span.attributes["messaging.message.body.size"] == 200_000, span.name
        assert span.attributes["goq.large.chunks"] == 4, span.name


def test_a_large_hook_fault_is_logged_not_raised(
    traced: tuple[OtelTracing, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    tracing, exporter = traced
    tracing.sending_large(object())(object())  # type: ignore[arg-type]
    tracing.downloading(object(), 0)(0, None)  # type: ignore[arg-type]
    assert "tracing: sending_large failed" in caplog.text
    assert "tracing: downloading failed" in caplog.text
    assert exporter.get_finished_spans() == ()
