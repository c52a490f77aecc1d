"""The OpenTelemetry tracer behind ``goq.sidecar.core.tracing``: imported only when an OTLP endpoint is set.

Spans (kind, name): PRODUCER ``goq send`` in the sending sidecar, one per accepted or refused message;
CLIENT ``goq deliver`` per delivery attempt, from the batch's write to the peer's answer (or the failure);
CONSUMER ``goq receive`` when the receiving sidecar hands the message to its application; INTERNAL
``goq ack`` when the application acknowledges it. A large message has these too (its send span lasts while
the payload streams in and is stored; a delivery attempt is one transfer), and two more: SERVER
``goq store`` in the receiving sidecar, from the transfer's envelope to its answer (checks, chunks, HMAC,
inbox), and INTERNAL ``goq download`` per read of its payload by the application. Each is a child of the
message's ``traceparent``, so a message's spans in both sidecars form one trace. The tracer provider is
the sidecar's own (no global one): an application library in the same process cannot change where GoQ's
spans go.
"""

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Final, ParamSpec

from google.protobuf.message import DecodeError
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from goq.api.v1 import envelope_pb2, peer_pb2
from goq.errors import GoQError
from goq.messages import MAX_HEADERS, LargeRef
from goq.sidecar.core.engine import QUEUED, SendReceipt, SendRequest
from goq.sidecar.core.tracing import TRACEPARENT, Addressed, Downloaded, LargeSendDone, LargeStored, SendDone
from goq.sidecar.domain.records import Incoming, Outgoing

log = logging.getLogger("goq.tracing")

SYSTEM: Final = "goq"
MAX_OPEN_ATTEMPTS: Final = 10_000
"""Attempt spans begun and not ended (their outcome is reported later); beyond, the oldest is ended as
``abandoned``, so a path that never reports an outcome cannot grow memory."""

_propagator = TraceContextTextMapPropagator()
P = ParamSpec("P")


def _never_raises(hook: Callable[P, None]) -> Callable[P, None]:
    """A tracer's fault is logged and dropped: it must never stop a delivery or an answer."""

    @functools.wraps(hook)
    def quiet(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            hook(*args, **kwargs)
        except Exception:
            log.warning("tracing: %s failed; the span is dropped", hook.__name__, exc_info=True)

    return quiet


def _untraced(results: Sequence[SendReceipt | GoQError | None]) -> None:
    """What ``sending`` returns when its spans could not be begun."""


def _untraced_large(result: Outgoing | SendReceipt | BaseException) -> None:
    """What ``sending_large`` returns when its span could not be begun."""


def _unstored(result: peer_pb2.MessageResult | None, held: int) -> None:
    """What ``storing_large`` returns when its span could not be begun."""


def _unread(read: int, error: BaseException | None) -> None:
    """What ``downloading`` returns when its span could not be begun."""


def _parent(traceparent: str | None) -> Context | None:
    return _propagator.extract({TRACEPARENT: traceparent}) if traceparent else None


def _envelope_of(body: bytes) -> envelope_pb2.Envelope:
    """An envelope's fields as they are, for spans only (nothing is checked here; undecodable: empty)."""
    envelope = envelope_pb2.Envelope()
    try:
        envelope.ParseFromString(body)
    except DecodeError:
        envelope.Clear()
    return envelope


def _large(large: envelope_pb2.LargeBody | LargeRef | None) -> dict[str, bool | int]:
    """A large body's attributes: its size and how many chunks it travels and is stored in."""
    if large is None or not large.chunk_size:
        return {}
    return {
        "goq.large": True,
        "messaging.message.body.size": large.size,
        "goq.large.chunks": -(-large.size // large.chunk_size),
        "goq.large.chunk_size": large.chunk_size,
    }


def _large_of(envelope: envelope_pb2.Envelope) -> dict[str, bool | int]:
    return _large(envelope.large) if envelope.HasField("large") else {}


def _outcome(result: peer_pb2.MessageResult) -> str:
    """``accepted``, ``duplicate``, ``poisoned``, ``rejected`` or ``retry-later``."""
    name: str = peer_pb2.Outcome.Name(result.outcome)
    return name.removeprefix("OUTCOME_").lower().replace("_", "-")


class OtelTracing:
    """Spans for one sidecar, exported in batches over OTLP/gRPC."""

    def __init__(self, provider: TracerProvider, identity: str) -> None:
        self.provider = provider
        self.identity = identity
        self.tracer = provider.get_tracer("goq.sidecar")
        self._attempts: dict[str, Span] = {}

    @classmethod
    def start(cls, identity: str, instance: str, endpoint: str) -> "OtelTracing":
        """A provider exporting to ``endpoint`` (``http://`` for plaintext); the SDK reads its other ``OTEL_*``
        variables itself (headers, TLS, batch sizes and delays, service name and resource attributes)."""
        resource = Resource.create({"service.name": "goq-sidecar", "goq.identity": identity})
        resource = resource.merge(Resource({"service.instance.id": instance}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        log.info("tracing on: spans exported over OTLP to %s", endpoint)
        return cls(provider, identity)

    def _attributes(self, message_id: str, destination: str) -> dict[str, str]:
        return {
            "messaging.system": SYSTEM,
            "messaging.message.id": message_id,
            "messaging.destination.name": destination,
            "goq.identity": self.identity,
        }

    def sending(self, requests: Sequence[SendRequest]) -> SendDone:
        try:
            spans = [self._send_span(request) for request in requests]
        except Exception:
            log.warning("tracing: sending failed; the spans are dropped", exc_info=True)
            return _untraced

        @_never_raises
        def done(results: Sequence[SendReceipt | GoQError | None]) -> None:
            for span, result in zip(spans, results, strict=True):
                if isinstance(result, SendReceipt):
                    span.set_attribute("messaging.message.id", result.id)
                    span.set_attribute("goq.state", result.state)
                elif result is not None:
                    span.set_status(Status(StatusCode.ERROR, str(result)))
                span.end()

        return done

    def _send_span(self, request: Addressed) -> Span:
        valid = request.headers is None or isinstance(request.headers, dict)  # others are refused later
        headers = request.headers if isinstance(request.headers, dict) else {}
        span = self.tracer.start_span(
            "goq send",
            context=_parent(headers.get(TRACEPARENT)),
            kind=SpanKind.PRODUCER,
            attributes=self._attributes(request.id or "", str(request.to)),
        )
        if valid and TRACEPARENT not in headers and len(headers) < MAX_HEADERS:
            carrier: dict[str, str] = {}  # the trace goes on from this span in the other sidecar
            _propagator.inject(carrier, context=trace.set_span_in_context(span))
            request.headers = {**headers, **carrier}
        return span

    @_never_raises
    def attempting(self, batch: Sequence[Outgoing], target: str) -> None:
        for item in batch:
            previous = self._attempts.pop(item.id, None)
            if previous is not None:  # its last attempt's outcome never came
                previous.set_attribute("goq.outcome", "abandoned")
                previous.end()
            envelope = _envelope_of(item.body)
            attributes = self._attributes(item.id, str(item.destination))
            attributes["server.address"] = target
            span = self.tracer.start_span(
                "goq deliver",
                context=_parent(envelope.headers.get(TRACEPARENT)),
                kind=SpanKind.CLIENT,
                attributes={**attributes, "goq.attempt": item.failed_attempts + 1, **_large_of(envelope)},
            )
            self._attempts[item.id] = span
        while len(self._attempts) > MAX_OPEN_ATTEMPTS:
            oldest = next(iter(self._attempts))
            span = self._attempts.pop(oldest)
            span.set_attribute("goq.outcome", "abandoned")
            span.end()

    @_never_raises
    def attempted(self, items: Sequence[Outgoing], outcome: str, detail: str = "") -> None:
        for item in items:
            span = self._attempts.pop(item.id, None)
            if span is None:  # no attempt of it began (no peer to try): nothing to end
                continue
            span.set_attribute("goq.outcome", outcome)
            if outcome != "delivered":
                span.set_status(Status(StatusCode.ERROR, detail or outcome))
            span.end()

    @_never_raises
    def received(self, items: Sequence[Incoming]) -> None:
        for item in items:
            m = item.message
            attributes = self._attributes(m.id, str(m.destination))
            span = self.tracer.start_span(
                "goq receive",
                context=_parent(m.headers.get(TRACEPARENT)),
                kind=SpanKind.CONSUMER,
                attributes={
                    **attributes,
                    "messaging.source.name": str(m.source),
                    "goq.delivery": item.deliveries,
                    **_large(m.large),
                },
            )
            span.end()

    @_never_raises
    def acknowledged(self, items: Sequence[Incoming]) -> None:
        for item in items:
            m = item.message
            span = self.tracer.start_span(
                "goq ack",
                context=_parent(m.headers.get(TRACEPARENT)),
                kind=SpanKind.INTERNAL,
                attributes={**self._attributes(m.id, str(m.destination)), **_large(m.large)},
            )
            span.end()

    # Large messages.

    def sending_large(self, request: Addressed) -> LargeSendDone:
        try:
            span = self._send_span(request)
        except Exception:
            log.warning("tracing: sending_large failed; the span is dropped", exc_info=True)
            return _untraced_large
        span.set_attribute("goq.large", True)

        @_never_raises
        def done(result: Outgoing | SendReceipt | BaseException) -> None:
            if isinstance(result, BaseException):
                span.set_status(Status(StatusCode.ERROR, str(result) or type(result).__name__))
            else:
                span.set_attribute("messaging.message.id", result.id)
                span.set_attribute("goq.state", result.state if isinstance(result, SendReceipt) else QUEUED)
                if isinstance(result, Outgoing):  # stored: its size is known now
                    span.set_attributes(_large_of(_envelope_of(result.body)))
            span.end()

        return done

    @_never_raises
    def resuming(self, item: Outgoing, offset: int) -> None:
        span = self._attempts.get(item.id)
        if span is not None:
            span.set_attribute("goq.large.offset", offset)

    def storing_large(self, body: bytes) -> LargeStored:
        try:
            envelope = _envelope_of(body)
            attributes = self._attributes(envelope.id, envelope.destination)
            span = self.tracer.start_span(
                "goq store",
                context=_parent(envelope.headers.get(TRACEPARENT)),
                kind=SpanKind.SERVER,
                attributes={**attributes, "messaging.source.name": envelope.source, **_large_of(envelope)},
            )
        except Exception:
            log.warning("tracing: storing_large failed; the span is dropped", exc_info=True)
            return _unstored

        @_never_raises
        def done(result: peer_pb2.MessageResult | None, held: int) -> None:
            span.set_attribute("goq.large.offset", held)
            outcome = _outcome(result) if result is not None else "broken"
            span.set_attribute("goq.outcome", outcome)
            if outcome in ("rejected", "retry-later", "broken"):
                reason = result.reason if result is not None else ""
                span.set_status(Status(StatusCode.ERROR, reason or "the transfer broke before an answer"))
            span.end()

        return done

    def downloading(self, item: Incoming, offset: int) -> Downloaded:
        try:
            m = item.message
            span = self.tracer.start_span(
                "goq download",
                context=_parent(m.headers.get(TRACEPARENT)),
                kind=SpanKind.INTERNAL,
                attributes={
                    **self._attributes(m.id, str(m.destination)),
                    **_large(m.large),
                    "goq.large.offset": offset,
                },
            )
        except Exception:
            log.warning("tracing: downloading failed; the span is dropped", exc_info=True)
            return _unread

        @_never_raises
        def done(read: int, error: BaseException | None) -> None:
            span.set_attribute("goq.large.bytes_read", read)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
            span.end()

        return done

    def close(self) -> None:
        for span in self._attempts.values():
            span.set_attribute("goq.outcome", "abandoned")
            span.end()
        self._attempts.clear()
        self.provider.shutdown()
