"""The tracer's rules, with the SDK's in-memory exporter: which requests get a ``traceparent``, what each span's
parent is, how an attempt span ends, and that a tracer fault never reaches the engine."""

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from goq.identity import Address
from goq.messages import MAX_HEADERS, Message
from goq.sidecar.core.engine import SendReceipt, SendRequest
from goq.sidecar.core.tracing_otel import OtelTracing
from goq.sidecar.domain.records import Outgoing

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
