"""``/livez``, ``/readyz`` and ``/metrics`` on the pod IP (port 7703), for probes and Prometheus.

Liveness and readiness as Kubernetes' own servers mean them: ``/livez`` says the process is alive and its
event loop answers (it checks no dependency: restarting the sidecar mends no MongoDB or peer outage);
``/readyz`` says it has started and is not shutting down. ``/healthz`` is ``/livez`` under its older
name; the injected startup and liveness probes stay on it, as a GoQueue may pin a sidecar image older
than ``/livez`` (``spec.sidecar.image``), and such a sidecar would be restarted over and over.
"""

from collections.abc import Callable
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from goq.sidecar.apis.http_protocol import Request, Response
from goq.sidecar.apis.http_routing import Router

TEXT = "text/plain; charset=utf-8"
MAX_CONNECTIONS: Final = 64
"""Most connections the health port holds (it listens on every interface): probes and scrapes each
take one for a moment, so 64 is ample; at the bound the one waiting longest for a request is closed
(see ``goq.sidecar.apis.http_server``), so idle or trickling clients cannot shut out the kubelet's probe."""


def health_routes(ready: Callable[[], bool], registry: CollectorRegistry) -> Router:
    """Liveness (the event loop answers), readiness (started and not shutting down), metrics."""

    async def livez(request: Request) -> Response:
        return Response(body=b"ok\n", content_type=TEXT)

    async def readyz(request: Request) -> Response:
        if ready():
            return Response(body=b"ready\n", content_type=TEXT)
        return Response(503, b"not ready\n", TEXT)

    async def metrics(request: Request) -> Response:
        return Response(body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    routes = Router()
    routes.add("GET", "/livez", livez)
    routes.add("GET", "/healthz", livez)
    routes.add("GET", "/readyz", readyz)
    routes.add("GET", "/metrics", metrics)
    return routes
