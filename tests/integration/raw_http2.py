"""HTTP/2 by hand, for the port fuzz: frames built byte by byte (valid, malformed or in floods), HPACK literals,
and a blocking connection (plaintext or TLS with ALPN h2) whose writes and reads are bounded in time and bytes.

No HTTP/2 library: a library refuses to send most of what the fuzz must send (bad lengths, streams out of order,
frames on the wrong stream), so the bytes are put together here.
"""

import contextlib
import socket
import ssl
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x7, 0xB
SERVER_NAME: Final = "goq-billing.default.svc"
"""The name (SNI) a TLS connection asks for: billing's Service, as its certificate names it, as a sidecar asks.
Any other name makes gRPC core log an ERROR line per handshake ("No match found for server name")."""
READ_CAP: Final = 4 * 1024 * 1024
"""Most bytes one ``drain`` keeps: what a server answers a flood with is counted, not stored."""


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _integer(value: int, prefix: int, first: int = 0) -> bytes:
    """HPACK's integer with an N-bit prefix (RFC 7541, 5.1)."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out, value = bytearray([first | limit]), value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def header_block(headers: list[tuple[str, str | bytes]]) -> bytes:
    """Literal header fields without indexing, names and values as they are (no Huffman)."""
    out = bytearray()
    for name, value in headers:
        raw = value if isinstance(value, bytes) else value.encode()
        out += b"\x00" + _integer(len(name), 7) + name.encode() + _integer(len(raw), 7) + raw
    return bytes(out)


def grpc_request(path: str, extra: list[tuple[str, str | bytes]] | None = None) -> bytes:
    """The header block of a gRPC call to ``path``."""
    return header_block(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "billing"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            *(extra or []),
        ]
    )


def grpc_message(body: bytes) -> bytes:
    """One length-prefixed gRPC message (not compressed)."""
    return b"\x00" + struct.pack(">I", len(body)) + body


@dataclass
class Frame:
    kind: int
    flags: int
    stream: int
    payload: bytes


def parse(data: bytes) -> list[Frame]:
    """The whole frames in ``data`` (a server's answers; the preface's SETTINGS first)."""
    frames, at = [], 0
    while at + 9 <= len(data):
        length = int.from_bytes(data[at : at + 3], "big")
        if at + 9 + length > len(data):
            break
        kind, flags = data[at + 3], data[at + 4]
        stream = int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
        frames.append(Frame(kind, flags, stream, data[at + 9 : at + 9 + length]))
        at += 9 + length
    return frames


@dataclass
class Connection:
    """A blocking connection to a port: writes give up after ``timeout`` (a server that stopped reading), reads
    keep at most ``READ_CAP`` bytes. ``closed`` says the server closed or reset it."""

    sock: socket.socket
    timeout: float = 2.0
    received: bytearray = field(default_factory=bytearray)
    closed: bool = False
    sent: int = 0

    def send(self, data: bytes) -> bool:
        """Write ``data``; False if the server closed the connection or stopped reading meanwhile."""
        if self.closed:
            return False
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except (TimeoutError, OSError):  # reset, broken pipe, or a full window that stayed full
            self.closed = True
            return False
        self.sent += len(data)
        return True

    def flood(self, frames: Iterable[bytes], burst: int = 50) -> int:
        """Send ``frames`` until the server closes the connection, reading what it answered after each ``burst``
        (a reset may drop what was not read); how many were sent."""
        sent = 0
        for data in frames:
            if not self.send(data):
                break
            sent += 1
            if sent % burst == 0:
                self.drain(0.01 if burst == 1 else 0)
        return sent

    def drain(self, seconds: float) -> bytes:
        """What the server sends within ``seconds``, until it closes (``closed``) or stays silent."""
        deadline = time.monotonic() + seconds
        start = len(self.received)
        while not self.closed:
            left = deadline - time.monotonic()
            self.sock.settimeout(min(left, 0.2) if left > 0 else 0.0)
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
                if left <= 0:
                    break
                continue
            except (OSError, ssl.SSLError):
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            if len(self.received) < READ_CAP:
                self.received += chunk
        return bytes(self.received[start:])

    def frames(self) -> list[Frame]:
        return parse(bytes(self.received))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def connect(port: int, tls: ssl.SSLContext | None = None, *, preface: bool = True, timeout: float = 2.0) -> Connection:
    """A connection to 127.0.0.1:``port`` (through TLS with ALPN h2 if ``tls``), the client preface and an empty
    SETTINGS sent unless ``preface`` is False."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=SERVER_NAME)
    connection = Connection(sock, timeout)
    if preface:
        connection.send(PREFACE + frame(SETTINGS, 0, 0))
    return connection


def client_tls(ca: bytes, cert: bytes | None, key: bytes | None, directory: str) -> ssl.SSLContext:
    """A TLS context trusting ``ca``, presenting ``cert`` if given, offering h2 (the PEMs written to ``directory``)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    ca_path = f"{directory}/ca.pem"
    with open(ca_path, "wb") as out:
        out.write(ca)
    context.load_verify_locations(ca_path)
    if cert is not None and key is not None:
        cert_path, key_path = f"{directory}/cert.pem", f"{directory}/key.pem"
        with open(cert_path, "wb") as out:
            out.write(cert)
        with open(key_path, "wb") as out:
            out.write(key)
        context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["h2"])
    return context
