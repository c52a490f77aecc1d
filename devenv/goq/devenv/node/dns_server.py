"""A small DNS responder for the cluster domain: what CoreDNS answers for Services, from a lookup kept current.

The real node's cluster DNS add-on (``cluster_dns``) serves it from the API server's Services and
Endpoints; ``tests/integration/test_replicas_share_work.py`` serves it from a fixed table, as CoreDNS
answers a headless Service with one address per replica. ``A`` queries for a known name get its IPv4
addresses; everything else gets NXDOMAIN (or an empty answer for other record types of a known name),
quickly, so that resolvers never wait. UDP and TCP, as resolvers use both.
"""

import asyncio
import contextlib
import ipaddress
import logging
import struct
from collections.abc import Callable
from typing import Final, cast

log = logging.getLogger("goq.devenv")

TYPE_A: Final = 1
CLASS_IN: Final = 1
RCODE_FORMERR: Final = 1
RCODE_NXDOMAIN: Final = 3
TTL: Final = 1
"""Seconds resolvers may cache an answer: pods come and go quickly here."""

Lookup = Callable[[str], list[str] | None]
"""A lower-case name without the final dot -> its IPv4 addresses, or ``None`` if the name does not exist."""


class DnsFormatError(ValueError):
    """The query could not be parsed."""


def _read_name(message: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    while True:
        if offset >= len(message):
            raise DnsFormatError("name runs past the end")
        length = message[offset]
        offset += 1
        if length == 0:
            return ".".join(labels), offset
        if length & 0xC0:
            raise DnsFormatError("compressed names are not expected in a question")
        labels.append(message[offset : offset + length].decode("ascii", "replace"))
        offset += length


def answer(query: bytes, lookup: Lookup) -> bytes:
    """The response to one DNS query message (pure: the lookup is the only outside input)."""
    if len(query) < 12:
        raise DnsFormatError("shorter than a header")
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    recursion_desired = flags & 0x0100
    if qdcount != 1:
        return struct.pack("!HHHHHH", ident, 0x8000 | recursion_desired | RCODE_FORMERR, 0, 0, 0, 0)
    name, end = _read_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[end : end + 4])
    question = query[12 : end + 4]
    addresses = lookup(name.lower().rstrip("."))
    records = b""
    count = 0
    if addresses is not None and qtype == TYPE_A and qclass == CLASS_IN:
        for address in addresses:
            packed = ipaddress.IPv4Address(address).packed
            records += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + packed
            count += 1
    rcode = RCODE_NXDOMAIN if addresses is None else 0
    header = struct.pack("!HHHHHH", ident, 0x8400 | recursion_desired | rcode, 1, count, 0, 0)
    return header + question + records


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        try:
            response = answer(data, self.lookup)
        except DnsFormatError as exc:
            log.debug("ignoring a malformed DNS query from %s: %s", addr, exc)
            return
        if self.transport is not None:
            self.transport.sendto(response, addr)


class DnsServer:
    """Serves ``lookup`` on ``host:port`` over UDP and TCP (port 0: a free one, read back from ``port``)."""

    def __init__(self, lookup: Lookup, host: str = "127.0.0.1", port: int = 0) -> None:
        self.lookup = lookup
        self.host = host
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def address(self) -> str:
        """``host:port``, as the sidecar's ``GOQ_DNS_SERVER`` wants it."""
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # TCP first on the requested (or a free) port, then UDP on the same number.
        self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
        self.port = self._tcp.sockets[0].getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self.lookup), local_addr=(self.host, self.port))
        self._udp = transport

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                response = answer(await reader.readexactly(length), self.lookup)
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, DnsFormatError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
