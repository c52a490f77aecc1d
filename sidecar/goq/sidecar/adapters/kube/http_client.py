"""A small HTTP/1.1 client on asyncio and h11, for the few calls a sidecar makes to the Kubernetes API.

Why not aiohttp's: importing it costs a sidecar about 11 MB in every pod (see ``http_server``). One
connection per request: a sidecar calls the API server every few seconds at most, and a watch holds
its own connection for as long as it lasts.
"""

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode, urlsplit

import h11

READ_SIZE: Final = 64 * 1024
CONNECT_TIMEOUT: Final = 10.0


class HttpClientError(ConnectionError):
    """No (whole) answer: the connection failed, or the server broke the protocol."""


@dataclass
class Reply:
    """The status and headers of an answer; its body is read on demand."""

    status: int
    reason: str
    headers: dict[str, str]
    _connection: h11.Connection
    _reader: asyncio.StreamReader

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            event = await _next_event(self._connection, self._reader)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise HttpClientError(f"the answer broke off ({type(event).__name__})")

    async def read(self) -> bytes:
        return b"".join([data async for data in self.chunks()])

    async def lines(self) -> AsyncIterator[bytes]:
        """The body line by line (a watch's events), as each line completes."""
        pending = b""
        async for data in self.chunks():
            pending += data
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line
        if pending:
            yield pending


def tls_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext:
    """The context for an ``https`` URL: the one given, the system's (``True``) or none checked (``False``)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@asynccontextmanager
async def request(
    method: str,
    url: str,
    *,
    params: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    verify: ssl.SSLContext | bool = True,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> AsyncIterator[Reply]:
    """Send one request on a new connection; the ``Reply`` is valid inside the block."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if params:
        target += "?" + urlencode(params)
    try:
        async with asyncio.timeout(connect_timeout):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls_context(verify) if secure else None, limit=READ_SIZE
            )
    except (OSError, TimeoutError) as exc:
        raise HttpClientError(f"cannot connect to {parts.netloc}: {exc!r}") from exc
    try:
        connection = h11.Connection(h11.CLIENT)
        fields = [("host", parts.netloc), *(headers or {}).items(), ("content-length", str(len(body or b"")))]
        for event in (h11.Request(method=method, target=target, headers=fields), h11.Data(data=body or b"")):
            writer.write(connection.send(event))
        writer.write(connection.send(h11.EndOfMessage()))
        await writer.drain()
        answer = await _next_event(connection, reader)
        while isinstance(answer, h11.InformationalResponse):
            answer = await _next_event(connection, reader)
        if not isinstance(answer, h11.Response):
            raise HttpClientError(f"{parts.netloc} closed the connection without an answer")
        yield Reply(
            status=answer.status_code,
            reason=answer.reason.decode("latin-1"),
            headers={name.decode("ascii"): value.decode("latin-1") for name, value in answer.headers},
            _connection=connection,
            _reader=reader,
        )
    except HttpClientError:
        raise
    except (OSError, h11.ProtocolError) as exc:
        raise HttpClientError(f"{method} {parts.netloc}{parts.path}: {exc!r}") from exc
    finally:
        writer.close()


async def _next_event(connection: h11.Connection, reader: asyncio.StreamReader) -> object:
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise HttpClientError(f"malformed answer: {exc}") from exc
        if event is not h11.NEED_DATA:
            return event
        connection.receive_data(await reader.read(READ_SIZE))
