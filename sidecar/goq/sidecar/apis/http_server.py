"""A small HTTP/1.1 server for the sidecar's REST API and its health port, on asyncio and h11.

Why not aiohttp's: importing ``aiohttp.web`` costs a sidecar 11 MB of memory in every pod, a sixth of
an idle sidecar, for a handful of JSON routes. h11 (the protocol state machine under httpx and
uvicorn) parses and frames requests and responses correctly; ``http_protocol`` adds a connection's side of it
(request bodies read as a stream, the ``Request`` and ``Response`` handlers see), and this module what the
sidecar needs around it: ``Expect: 100-continue`` answered (or refused before the body is sent), responses whole
or streamed, keep-alive, and a shutdown that gives running requests a grace period. Routes with ``{name}``
parts are ``http_routing``'s.

It holds up against clients that are slow or gone (the health port listens on every interface): a
request head must arrive whole within ``HEAD_TIMEOUT``, a body may not stall for ``BODY_TIMEOUT``, an
answer may not wait for its reader for ``SEND_TIMEOUT``, and a server holds at most ``max_connections``
connections: at the bound, a new connection closes the one that has waited longest for a request (idle,
or still sending its head), or is refused with 503 when every connection is busy with a request. A body
cut short is answered 400 and the connection closed; none of it is logged above DEBUG.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

import h11

from goq.sidecar.apis.http_protocol import READ_SIZE, BodyError, Channel, Request, Response, request_of
from goq.sidecar.domain.throttling import ThrottledLog

if TYPE_CHECKING:
    from goq.sidecar.apis.http_routing import Router

log = logging.getLogger("goq.sidecar.http")

_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus}
DRAIN_LIMIT: Final = 64 * 1024
"""Most bytes of an unread request body read and dropped to keep the connection; beyond, it closes."""
IDLE_TIMEOUT: Final = 75.0
"""Seconds a kept-alive connection may wait for the first byte of its next request (aiohttp's default too)."""
HEAD_TIMEOUT: Final = 10.0
"""Seconds from a new connection (or the first byte of a kept-alive one's next request) to the end of
the request head. Clients send a head in one write; one trickled a byte at a time, or a request line
with no blank line after it, would otherwise hold its connection forever. Answered 408, then closed."""
BODY_TIMEOUT: Final = 30.0
"""Seconds a request body may go without a byte arriving before the request is answered 408 and its
connection closed: a client that stalls mid-body would otherwise hold its connection (and a large
send's half-written body) forever. Draining an unread body after the answer is bounded by it in all."""
SEND_TIMEOUT: Final = 60.0
"""Seconds an answer may wait for the client to read any of it (a full socket buffer) before the
connection is closed: a client that asks and never reads would otherwise hold it forever. Generous,
as an application may pause between reads of a large payload."""
MAX_CONNECTIONS: Final = 512
"""Most connections one server holds at once (each costs a socket and a task). Beyond it, the
connection waiting longest for a request is closed, so idle or trickling clients cannot shut out a
real request; when all are busy with requests, the new one is answered 503 and closed."""
BODILESS: Final = frozenset({204, 304})
"""Statuses whose answer has no body (RFC 9110), like any answer to a ``HEAD``."""
REFUSAL_LINGER: Final = 1.0
"""Seconds a refused connection's request is read and dropped after the 503, before it is closed."""
REFUSAL_LOG_INTERVAL: Final = 60.0
"""Seconds between warnings that a server refused connections at its bound: the first refusal is logged at
once, the next ones as one line per interval with their count (``goq.sidecar.domain.throttling``)."""
_REFUSED_FIRST: Final = "HTTP server {detail}: refused 1 new one"
_REFUSED_MORE: Final = "HTTP server {detail}: refused {count} more in the last {seconds:.0f}s"


class HttpServer:
    """Serves one ``Router`` on one address; ``close`` lets running requests finish for a grace period.

    The timeouts and the connection bound are the module's constants unless given (tests shorten them).
    """

    def __init__(
        self,
        router: "Router",
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        head_timeout: float = HEAD_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        send_timeout: float = SEND_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        refusal_log_interval: float = REFUSAL_LOG_INTERVAL,
    ) -> None:
        self.router = router
        self.idle_timeout, self.head_timeout = idle_timeout, head_timeout
        self.body_timeout, self.send_timeout = body_timeout, send_timeout
        self.max_connections = max_connections
        self.refused = 0
        """Connections refused at the bound since the server started."""
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], Channel] = {}
        self._refusals = ThrottledLog(log, _REFUSED_FIRST, _REFUSED_MORE, interval=refusal_log_interval)

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, limit=READ_SIZE)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connections(self) -> int:
        """Connections held now."""
        return len(self._connections)

    async def close(self, grace: float = 1.0) -> None:
        """Stop accepting; idle connections close now, busy ones after their answer or ``grace`` seconds."""
        if self._server is None:
            return
        self._server.close()
        for task, channel in list(self._connections.items()):
            if channel.waiting_since is not None:
                self._dismiss(task, channel)
        if self._connections:
            connections = dict(self._connections)
            _, late = await asyncio.wait(list(connections), timeout=grace)
            for task in late:
                self._dismiss(task, connections[task])
            await asyncio.gather(*late, return_exceptions=True)
        self._refusals.close()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.max_connections and not self._make_room():
            await self._refuse_busy(reader, writer)
            return
        channel = Channel(reader, writer, self.body_timeout, self.send_timeout)
        self._connections[task] = channel
        try:
            await self._requests(channel)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away, or stayed silent too long: nothing to answer
        except asyncio.CancelledError:
            if not channel.dismissed:
                raise
            # Ended by the server: asyncio (3.11) would log a cancelled connection task as an error.
        except h11.RemoteProtocolError as exc:
            await self._refuse_malformed(channel, exc)
        except Exception:  # a streamed answer that broke off: its connection is all that can go
            log.exception("HTTP connection failed mid-answer")
        finally:
            self._connections.pop(task, None)
            writer.close()

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request, if any is waiting."""
        waiting = [(c.waiting_since, t) for t, c in self._connections.items() if c.waiting_since is not None]
        if not waiting:
            return False
        _, task = min(waiting, key=lambda pair: pair[0])
        self._dismiss(task, self._connections.pop(task))
        return True

    @staticmethod
    def _dismiss(task: asyncio.Task[None], channel: Channel) -> None:
        channel.dismissed = True
        task.cancel()

    async def _refuse_busy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Every connection is busy with a request: say so (503) and close, with one warning a while.
        What the client sent is read and dropped for ``REFUSAL_LINGER`` seconds at most, as closing a
        socket with unread bytes resets it, and the reset could overtake the 503."""
        self.refused += 1
        busy = f"on port {self.port} holds {self.max_connections} connections, all busy with requests"
        self._refusals.event("busy", busy)
        body = f"busy: {self.max_connections} connections are being served; retry shortly\n".encode()
        head = h11.Response(
            status_code=503,
            headers=[
                ("content-type", "text/plain; charset=utf-8"),
                ("content-length", str(len(body))),
                ("connection", "close"),
            ],
            reason=_REASONS[503],
        )
        # (cancelled too: on shutdown, this brief linger ends like the connection it answers)
        with contextlib.suppress(ConnectionError, TimeoutError, RuntimeError, asyncio.CancelledError):
            writer.write((h11.Connection(h11.SERVER).send(head) or b"") + body)
            writer.write_eof()
            async with asyncio.timeout(REFUSAL_LINGER):
                while await reader.read(READ_SIZE):
                    pass
        writer.close()

    async def _requests(self, channel: Channel) -> None:
        while True:
            event = await self._next_request(channel)
            if event is None:
                return  # the client closed the connection, or stayed silent
            channel.waiting_since = None
            channel.method = event.method
            request = request_of(event, channel)
            response = None
            if channel.h11.they_are_waiting_for_100_continue or "expect" in request.headers:
                response = await self.router.expect(request)
                if response is None and channel.h11.they_are_waiting_for_100_continue:
                    await channel.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
                elif response is not None and channel.h11.they_are_waiting_for_100_continue:
                    channel.must_close = True  # refused before its body: the body will not come
            if response is None:
                response = await self.router(request)
            await self._respond(channel, response)
            channel.method = b""
            channel.waiting_since = time.monotonic()
            channel.served = True
            if not await self._finish_request(request) or channel.h11.our_state is not h11.DONE:
                return  # the connection is not kept alive
            channel.next_cycle()

    async def _next_request(self, channel: Channel) -> h11.Request | None:
        """The next request's head: a kept-alive connection waits ``idle_timeout`` for its first
        byte; the head must then be whole within ``head_timeout`` (from the accept, for a new one)."""
        if channel.served and not channel.h11.trailing_data[0]:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    data = await channel.reader.read(channel.read_size())
            except TimeoutError:
                return None
            channel.feed(data)
        try:
            event: object = channel.h11.next_event()  # a head that has arrived whole needs no timer
            if event is h11.NEED_DATA:
                async with asyncio.timeout(self.head_timeout):
                    event = await channel.next_event()
        except TimeoutError:
            if channel.h11.trailing_data[0]:  # a head begun and not finished: say why it ends
                log.debug("HTTP request head not complete within %g s; closing", self.head_timeout)
                message = f"the request head did not arrive whole within {self.head_timeout:g} s\n"
                await self._refuse(channel, 408, message)
            return None
        return event if isinstance(event, h11.Request) else None

    async def _finish_request(self, request: Request) -> bool:
        """Read what is left of the request (a GET's end, a refused small body) so the connection can be
        reused; a body left unread beyond ``DRAIN_LIMIT`` bytes, or not all there within the body
        timeout, closes it instead."""
        if request.body_read:
            return True
        drained = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                async for data in request.chunks():
                    drained += len(data)
                    if drained > DRAIN_LIMIT:
                        return False
        except (TimeoutError, BodyError):
            return False
        return True

    async def _respond(self, channel: Channel, response: Response) -> None:
        headers = [(name.lower(), value) for name, value in response.headers.items()]
        if response.content_type is not None:
            headers.append(("content-type", response.content_type))
        length = len(response.body) if response.stream is None else response.length
        if length is not None:
            headers.append(("content-length", str(length)))
        if channel.must_close and "connection" not in response.headers:
            headers.append(("connection", "close"))
        reason = _REASONS.get(response.status, b"")
        head = h11.Response(status_code=response.status, headers=headers, reason=reason)
        if channel.method == b"HEAD" or response.status in BODILESS:
            # The head alone, its content-length that of the body it stands for (RFC 9110, 9.3.2): h11
            # refuses a body here, and a refusal of a HEAD must not end as a failed connection.
            if isinstance(response.stream, AsyncGenerator):
                await response.stream.aclose()
            await channel.send(head, h11.EndOfMessage())
            return
        if response.stream is None:
            await channel.send(head, h11.Data(data=response.body), h11.EndOfMessage())
            return
        await channel.send(head)
        async for data in response.stream:
            await channel.send(h11.Data(data=data))
        await channel.send(h11.EndOfMessage())

    async def _refuse_malformed(self, channel: Channel, error: h11.RemoteProtocolError) -> None:
        await self._refuse(channel, error.error_status_hint, f"malformed HTTP request: {error}\n")

    async def _refuse(self, channel: Channel, status: int, message: str) -> None:
        """Answer ``status`` before the connection closes, unless an answer has begun already."""
        if channel.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return  # an answer has begun: all that is left is to close
        response = Response(status, message.encode(), "text/plain; charset=utf-8", {"connection": "close"})
        with contextlib.suppress(ConnectionError, TimeoutError, h11.LocalProtocolError):
            await self._respond(channel, response)
