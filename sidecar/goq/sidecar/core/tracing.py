"""OpenTelemetry tracing, optional (``pip install 'goq-sidecar[tracing]'``): off, and free, unless configured.

When ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, the sidecar makes
a span for each send, each delivery attempt, each hand-over to the application and each acknowledgement,
and for a large message also for its storage by the receiving sidecar and each read of its payload; it
exports them over OTLP/gRPC (``goq.sidecar.core.tracing_otel``). Spans are linked through the message's
W3C ``traceparent`` header: the application's own when it gave one (carried unchanged), else one the
sending sidecar adds, naming its send span. Unset, OpenTelemetry is never imported and the engine's (and
``goq.sidecar.large``'s) only cost is one ``is None`` test per hook. The SDK reads its other ``OTEL_*``
variables itself (service name, resource attributes, batch delays, exporter headers and TLS).
"""

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Protocol

from goq.errors import ConfigError

if TYPE_CHECKING:
    from goq.api.v1.peer_pb2 import MessageResult
    from goq.errors import GoQError
    from goq.sidecar.core.engine import SendReceipt, SendRequest
    from goq.sidecar.domain.records import Incoming, Outgoing

ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACEPARENT: Final = "traceparent"

SendDone = Callable[[Sequence["SendReceipt | GoQError | None"]], None]
"""Ends the send spans begun by ``Tracing.sending``, given each request's result."""

LargeSendDone = Callable[["Outgoing | SendReceipt | BaseException"], None]
"""Ends the send span begun by ``Tracing.sending_large``, given the envelope kept for delivery (its size and
chunk count), the receipt of a repeated send, or what refused or broke the send."""

LargeStored = Callable[["MessageResult | None", int], None]
"""Ends the span begun by ``Tracing.storing_large``, given the answer to the sender (``None``: the transfer
broke before one) and how many bytes of the body this sidecar held when the transfer began."""

Downloaded = Callable[[int, "BaseException | None"], None]
"""Ends the span begun by ``Tracing.downloading``, given the bytes read and what stopped the read, if anything."""


class Addressed(Protocol):
    """What a send span reads of a request, small (``SendRequest``) or large (``goq.sidecar.large``'s
    ``LargeSend``), and the ``headers`` it may add ``traceparent`` to."""

    to: str
    id: str | None
    headers: dict[str, str] | None


class Tracing(Protocol):
    """What the engine and the sender tell the tracer; every method is quick and never raises."""

    def sending(self, requests: Sequence["SendRequest"]) -> SendDone:
        """Begin a send span per request; a request without ``traceparent`` gets one naming its span."""
        ...

    def attempting(self, batch: Sequence["Outgoing"], target: str) -> None:
        """A delivery attempt of ``batch`` to the peer at ``target`` begins."""
        ...

    def attempted(self, items: Sequence["Outgoing"], outcome: str, detail: str = "") -> None:
        """The attempt of each of ``items`` ended: ``delivered``, ``failed`` or ``rejected``."""
        ...

    def received(self, items: Sequence["Incoming"]) -> None:
        """``items`` were handed to the application."""
        ...

    def acknowledged(self, items: Sequence["Incoming"]) -> None:
        """The application acknowledged ``items``."""
        ...

    def sending_large(self, request: Addressed) -> LargeSendDone:
        """Begin the send span of a large message (its payload still to stream in); as ``sending``, a request
        without ``traceparent`` gets one naming the span."""
        ...

    def resuming(self, item: "Outgoing", offset: int) -> None:
        """In the delivery attempt of large ``item`` begun by ``attempting``, the receiver said it holds
        ``offset`` bytes of the body already: the rest follows."""
        ...

    def storing_large(self, body: bytes) -> LargeStored:
        """The receiving sidecar begins to take a large message whose envelope is ``body`` (not verified yet):
        checks, the body's chunks, its HMAC, the inbox."""
        ...

    def downloading(self, item: "Incoming", offset: int) -> Downloaded:
        """The application begins to read large ``item``'s payload from ``offset``."""
        ...

    def close(self) -> None:
        """Export what is left (blocking: call it off the event loop)."""
        ...


def tracing_from_env(identity: str, instance: str, environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """The tracer when an OTLP endpoint is configured (the traces' own endpoint wins), else ``None`` (and
    nothing imported)."""
    endpoint = environ.get(ENDPOINTS[1]) or environ.get(ENDPOINTS[0])
    if not endpoint:
        return None
    try:
        from goq.sidecar.core.tracing_otel import OtelTracing  # only when configured: nothing to load otherwise
    except ImportError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise ConfigError(
            f"{' or '.join(ENDPOINTS)} is set but OpenTelemetry is not installed: "
            "pip install 'goq-sidecar[tracing]', or unset the variable to run without tracing"
        ) from exc
    return OtelTracing.start(identity, instance, endpoint)
