"""``/healthz``, ``/readyz`` and ``/metrics`` on the pod IP (port 7703), for probes and Prometheus."""

from collections.abc import Callable
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from goq.sidecar.http_server import Request, Response, Router

TEXT = "text/plain; charset=utf-8"
MAX_CONNECTIONS: Final = 64
"""Most connections the health port holds (it listens on every interface): probes and scrapes each
take one for a moment, so 64 is ample; at the bound the one waiting longest for a request is closed
(see ``goq.sidecar.http_server``), so idle or trickling clients cannot shut out the kubelet's probe."""


def health_routes(ready: Callable[[], bool], registry: CollectorRegistry) -> Router:
    """Liveness (the event loop answers), readiness (started and not shutting down), metrics."""

    async def healthz(request: Request) -> Response:
        return Response(body=b"ok\n", content_type=TEXT)

    async def readyz(request: Request) -> Response:
        if ready():
            return Response(body=b"ready\n", content_type=TEXT)
        return Response(503, b"not ready\n", TEXT)

    async def metrics(request: Request) -> Response:
        return Response(body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    routes = Router()
    routes.add("GET", "/healthz", healthz)
    routes.add("GET", "/readyz", readyz)
    routes.add("GET", "/metrics", metrics)
    return routes
