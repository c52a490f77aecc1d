"""HTTP/1.1 on one connection, for ``http_server``: h11's state machine between a socket and the handlers.

h11 (the protocol state machine under httpx and uvicorn) parses and frames requests and responses correctly;
this module adds what a handler sees: the ``Request`` (its body read as a stream, ``chunks``), the ``Response``
(whole or streamed), and the refusals (``HttpError``, ``BodyError``). A request head is read no further than
``MAX_HEAD``; a body that stalls for the body timeout, or breaks off, is ``BodyError``.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote

import h11

log = logging.getLogger("goq.sidecar.http")

READ_SIZE: Final = 64 * 1024
MAX_HEAD: Final = 64 * 1024
"""Most bytes of a request line and headers; more is refused (431). h11 measures a head only while it is
incomplete, so while one arrives no read takes its buffer past ``MAX_HEAD + 1`` bytes (``Channel.read_size``):
otherwise a 100 KB head arriving in two reads would be taken whole."""


class HttpError(Exception):
    """A request the server refuses with ``status`` (e.g. 404 no route, 405 wrong method)."""

    def __init__(self, status: int, message: str, allowed: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.allowed = sorted(allowed)


class BodyError(HttpError):
    """The request body broke off (400) or stalled (408): answered if the client can still read, and
    the connection closed, since the rest of its bytes cannot be trusted to start a next request."""


class Channel:
    """One connection: h11's state machine between a socket's reader and writer."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body_timeout: float, send_timeout: float
    ) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.body_timeout, self.send_timeout = body_timeout, send_timeout
        self.must_close = False
        """The rest of this request's body will not come (it broke off, stalled, or was refused before
        ``100 Continue``): answer if possible, then close."""
        self.waiting_since: float | None = time.monotonic()
        """Since when the connection waits for a request (idle, or reading a head, or draining an
        answered request's body); None while a request is being handled. At the bound, the longest
        waiting connection is closed to make room."""
        self.served = False
        self.head_bytes = 0
        """Bytes in h11's buffer while it waits for a request head: what was left from the last request, and
        what was read since (h11 takes a head whole or not at all, so none of it was consumed yet)."""
        self.method = b""
        """The method of the request being answered: the answer to a ``HEAD`` has a head and no body."""
        self.dismissed = False
        """The server cancelled this connection (to make room, or on shutdown): an end, not an error."""

    async def next_event(self) -> object:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.feed(await self.reader.read(self.read_size()))

    def read_size(self) -> int:
        """How much to read next: while a head arrives, no more than fills h11's buffer to ``MAX_HEAD + 1`` bytes,
        so that a longer head is found incomplete there and refused (431)."""
        if self.h11.their_state is not h11.IDLE:
            return READ_SIZE
        return max(1, min(READ_SIZE, MAX_HEAD + 1 - self.head_bytes))

    def feed(self, data: bytes) -> None:
        if self.h11.their_state is h11.IDLE:
            self.head_bytes += len(data)
        self.h11.receive_data(data)

    def next_cycle(self) -> None:
        """Ready for the next request on a kept-alive connection."""
        self.h11.start_next_cycle()
        self.head_bytes = len(self.h11.trailing_data[0])  # a pipelined request, or part of one

    async def send(self, *events: h11.Event) -> None:
        """One write for all ``events``: a small answer leaves in one segment, not one per part. Only what the
        socket did not take at once is waited for (a timer per answer cost more than the answer's own code),
        or a connection that is closing, where ``drain`` raises: a write alone drops its bytes quietly and
        would let a streamed answer to a client that went away run on."""
        self.writer.write(b"".join(self.h11.send(event) or b"" for event in events))
        transport = self.writer.transport
        if transport.get_write_buffer_size() or transport.is_closing():
            async with asyncio.timeout(self.send_timeout):
                await self.writer.drain()

    async def body_event(self) -> object:
        """The next event of a request body, or ``BodyError`` when it broke off or stalled. What has arrived
        already is taken without a timer: only a wait for the client is bounded."""
        try:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout(self.body_timeout):
                return await self.next_event()
        except TimeoutError:
            self.must_close = True
            message = f"no byte of the request body arrived for {self.body_timeout:g} s; send the body without pauses"
            log.debug("HTTP request body stalled: %s", message)
            raise BodyError(408, message) from None
        except h11.RemoteProtocolError as exc:
            self.must_close = True
            log.debug("HTTP request body broke off: %s", exc)
            raise BodyError(400, f"the request body broke off before its end ({exc}); send the whole body") from None


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
    _channel: Channel | None = None
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

    @property
    def body_read(self) -> bool:
        """Whether the body was read to its end (or there is no connection to read it from)."""
        return self._channel is None or self._body_done

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a client that hangs up mid-body, or sends nothing for the body
        timeout, raises ``BodyError`` (400 or 408), which the router answers like any refusal."""
        while self._channel is not None and not self._body_done:
            if self._channel.must_close:
                raise BodyError(400, "the request body broke off before its end; send the whole body")
            event = await self._channel.body_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._body_done = True
            else:
                self._channel.must_close = True
                raise BodyError(400, f"the request body broke off ({type(event).__name__}); send the whole body")


@dataclass
class Response:
    """A whole answer (``body``), or a streamed one (``stream``, with its ``length`` when known)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None
    length: int | None = None


def request_of(event: h11.Request, channel: Channel) -> Request:
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
