"""Routes for the sidecar's HTTP server: by method and path (``/v1/messages/{id}/ack``), every failure rendered
by one function (text for the health port, JSON for the REST API)."""

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from goq.sidecar.apis.http_protocol import HttpError, Request, Response

log = logging.getLogger("goq.sidecar.http")

Handler = Callable[[Request], Awaitable[Response]]
ErrorRenderer = Callable[[Request, Exception], Response]


def plain_errors(request: Request, error: Exception) -> Response:
    """Refusals as text; an unexpected failure is logged and answered 500."""
    if isinstance(error, HttpError):
        return Response(error.status, f"{error}\n".encode(), "text/plain; charset=utf-8")
    log.error("HTTP %s %s failed", request.method, request.path, exc_info=error)
    return Response(500, b"internal error\n", "text/plain; charset=utf-8")


@dataclass
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    expect: Callable[[Request], Awaitable[Response | None]] | None


class Router:
    """Routes by method and path (``/v1/messages/{id}/ack``); every failure is rendered by ``errors``."""

    def __init__(self, errors: ErrorRenderer = plain_errors) -> None:
        self.errors = errors
        self._routes: list[_Route] = []

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        expect: Callable[[Request], Awaitable[Response | None]] | None = None,
    ) -> None:
        """``expect`` may answer a request that waits for ``100 Continue`` before its body is sent."""
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
        self._routes.append(_Route(method, re.compile(f"{regex}$"), handler, expect))

    def _match(self, request: Request) -> _Route:
        allowed = []
        for route in self._routes:
            found = route.pattern.match(request.raw_path)
            if found is None:
                continue
            if route.method == request.method:
                request.params = {name: unquote(part) for name, part in found.groupdict().items()}
                return route
            allowed.append(route.method)
        if allowed:
            message = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(sorted(allowed))}"
            raise HttpError(405, message, allowed)
        raise HttpError(404, f"no such endpoint: {request.path}")

    async def expect(self, request: Request) -> Response | None:
        """The answer instead of ``100 Continue``, if the request is refused before its body."""
        try:
            if request.headers.get("expect", "").lower() != "100-continue":
                raise HttpError(417, f"unknown Expect: {request.headers.get('expect')!r}; only 100-continue is")
            route = self._match(request)
            return await route.expect(request) if route.expect is not None else None
        except Exception as exc:
            return self.errors(request, exc)

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._match(request).handler(request)
        except Exception as exc:
            return self.errors(request, exc)
