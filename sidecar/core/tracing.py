"""OpenTelemetry tracing, optional (``pip install 'goq[tracing]'``): off, and free, unless configured.

When ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, the sidecar makes
a span for each send, each delivery attempt, each hand-over to the application and each acknowledgement,
and exports them over OTLP/gRPC (``goq.sidecar.core.tracing_otel``). Spans are linked through the message's
W3C ``traceparent`` header: the application's own when it gave one (carried unchanged), else one the
sending sidecar adds, naming its send span. Unset, OpenTelemetry is never imported and the engine's only
cost is one ``is None`` test per hook. The SDK reads its other ``OTEL_*`` variables itself (service name,
resource attributes, batch delays, exporter headers and TLS).
"""

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Protocol

from goq.errors import ConfigError

if TYPE_CHECKING:
    from goq.errors import GoQError
    from goq.sidecar.core.engine import SendReceipt, SendRequest
    from goq.sidecar.domain.records import Incoming, Outgoing

ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TRACEPARENT: Final = "traceparent"

SendDone = Callable[[Sequence["SendReceipt | GoQError | None"]], None]
"""Ends the send spans begun by ``Tracing.sending``, given each request's result."""


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
            "pip install 'goq[tracing]', or unset the variable to run without tracing"
        ) from exc
    return OtelTracing.start(identity, instance, endpoint)
