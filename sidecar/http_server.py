"""A small HTTP/1.1 server for the sidecar's REST API and its health port, on asyncio and h11.

Why not aiohttp's: importing ``aiohttp.web`` costs a sidecar 11 MB of memory in every pod, a sixth of
an idle sidecar, for a handful of JSON routes. h11 (the protocol state machine under httpx and
uvicorn) parses and frames requests and responses correctly; this module adds what the sidecar needs
around it: routes with ``{name}`` parts, request bodies read as a stream, ``Expect: 100-continue``
answered (or refused before the body is sent), responses whole or streamed, keep-alive, and a
shutdown that gives running requests a grace period.
"""

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Final
from urllib.parse import parse_qsl, unquote

import h11

log = logging.getLogger("goq.sidecar.http")

READ_SIZE: Final = 64 * 1024
MAX_HEAD: Final = 64 * 1024
"""Most bytes of a request line and headers; more is refused (431)."""
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}
DRAIN_LIMIT: Final = 64 * 1024
"""Most bytes of an unread request body read and dropped to keep the connection; beyond, it closes."""
IDLE_TIMEOUT: Final = 75.0
"""Seconds a kept-alive connection may wait for its next request (aiohttp's default too)."""


class HttpError(Exception):
    """A request the server refuses with ``status`` (e.g. 404 no route, 405 wrong method)."""

    def __init__(self, status: int, message: str, allowed: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.allowed = sorted(allowed)


class _Channel:
    """One connection: h11's state machine between a socket's reader and writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    async def next_event(self) -> object:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.h11.receive_data(await self.reader.read(READ_SIZE))

    async def send(self, *events: h11.Event) -> None:
        """One write for all ``events``: a small answer leaves in one segment, not one per part."""
        self.writer.write(b"".join(self.h11.send(event) or b"" for event in events))
        await self.writer.drain()


@dataclass
class Request:
    """What a handler sees: the request line and headers; the body is read on demand (``chunks``)."""

    method: str
    raw_path: str
    """The path as sent (percent-encoded): routes match it segment by segment, so ``%2F`` in a part stays in it."""
    query: list[tuple[str, str]]
    headers: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    """The ``{name}`` parts of the matched route."""
    _channel: _Channel | None = None
    _body_done: bool = False

    @property
    def path(self) -> str:
        return unquote(self.raw_path)

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        return int(value) if value is not None else None  # h11 has checked it is a number

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case; ``application/octet-stream`` when absent (RFC 9110)."""
        value = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        return value or "application/octet-stream"

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a client that hangs up mid-body raises ``ConnectionError``."""
        while self._channel is not None and not self._body_done:
            try:
                event = await self._channel.next_event()
            except h11.RemoteProtocolError as exc:
                raise ConnectionError(f"the request body broke off: {exc}") from exc
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
            else:
                raise ConnectionError(f"the request body broke off ({type(event).__name__})")


@dataclass
class Response:
    """A whole answer (``body``), or a streamed one (``stream``, with its ``length`` when known)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None
    length: int | None = None


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


class HttpServer:
    """Serves one ``Router`` on one address; ``close`` lets running requests finish for a grace period."""

    def __init__(self, router: Router, *, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.router = router
        self.idle_timeout = idle_timeout
        self._server: asyncio.Server | None = None
        self._busy: dict[asyncio.Task[None], bool] = {}

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=READ_SIZE)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting; idle connections close now, busy ones after their answer or ``grace`` seconds."""
        if self._server is None:
            return
        self._server.close()
        for task, busy in list(self._busy.items()):
            if not busy:
                task.cancel()
        if self._busy:
            _, late = await asyncio.wait(list(self._busy), timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._busy[task] = False
        channel = _Channel(reader, writer)
        try:
            await self._requests(channel, task)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away, or stayed silent too long: nothing to answer
        except h11.RemoteProtocolError as exc:
            await self._refuse_malformed(channel, exc)
        except Exception:  # a streamed answer that broke off: its connection is all that can go
            log.exception("HTTP connection failed mid-answer")
        finally:
            self._busy.pop(task, None)
            writer.close()

    async def _requests(self, channel: _Channel, task: asyncio.Task[None]) -> None:
        while True:
            self._busy[task] = False
            async with asyncio.timeout(self.idle_timeout):
                event = await channel.next_event()
            if not isinstance(event, h11.Request):
                return  # the client closed the connection
            self._busy[task] = True
            request = _request_of(event, channel)
            response = None
            if channel.h11.they_are_waiting_for_100_continue or "expect" in request.headers:
                response = await self.router.expect(request)
                if response is None and channel.h11.they_are_waiting_for_100_continue:
                    await channel.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
            if response is None:
                response = await self.router(request)
            await self._respond(channel, response)
            if not await _finish_request(request) or channel.h11.our_state is not h11.DONE:
                return  # the connection is not kept alive
            channel.h11.start_next_cycle()

    async def _respond(self, channel: _Channel, response: Response) -> None:
        headers = [(name.lower(), value) for name, value in response.headers.items()]
        if response.content_type is not None:
            headers.append(("content-type", response.content_type))
        length = len(response.body) if response.stream is None else response.length
        if length is not None:
            headers.append(("content-length", str(length)))
        reason = _REASONS.get(response.status, b"")
        head = h11.Response(status_code=response.status, headers=headers, reason=reason)
        if response.stream is None:
            await channel.send(head, h11.Data(data=response.body), h11.EndOfMessage())
            return
        await channel.send(head)
        async for data in response.stream:
            await channel.send(h11.Data(data=data))
        await channel.send(h11.EndOfMessage())

    async def _refuse_malformed(self, channel: _Channel, error: h11.RemoteProtocolError) -> None:
        if channel.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # an answer has begun: all that is left is to close
        body = f"malformed HTTP request: {error}\n".encode()
        response = Response(error.error_status_hint, body, "text/plain; charset=utf-8", {"connection": "close"})
        with contextlib.suppress(ConnectionError, h11.LocalProtocolError):
            await self._respond(channel, response)


async def _finish_request(request: Request) -> bool:
    """Read what is left of the request (a GET's end, a refused small body) so the connection can be
    reused; a body left unread beyond ``DRAIN_LIMIT`` bytes closes it instead."""
    drained = 0
    async for data in request.chunks():
        drained += len(data)
        if drained > DRAIN_LIMIT:
            return False
    return True


def _request_of(event: h11.Request, channel: _Channel) -> Request:
    target = event.target.decode("ascii", "replace")
    path, _, query = target.partition("?")
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("ascii")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return Request(
        method=event.method.decode("ascii"),
        raw_path=path,
        query=parse_qsl(query, keep_blank_values=True),
        headers=headers,
        _channel=channel,
    )
