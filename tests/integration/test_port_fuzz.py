"""A fuzz of the ports a sidecar opens to the network, against real sidecar processes: the peer port (7702, HTTP/2,
plaintext and mutual TLS) and the health port (7703, HTTP/1.1; the REST port 7700 runs the same server).

Malformed frames and requests, floods within bounded loops, and byte strings from hypothesis. After each attack the
sidecar is alive, its resident memory grew by less than a bound, ``/readyz`` answers 200, the honest messages sent
meanwhile (one at a time, from another sidecar) all arrived, nothing an attacker sent reached the application, and
the log holds no traceback and no ERROR line. The figures (memory before and after, messages, what the server
answered) are printed.
"""

import asyncio
import contextlib
import datetime
import random
import socket
import ssl
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.secret_volume import SecretVolume
from goq.devenv.sidecars import SidecarProcess
from goq.identity import Address
from goq.operator.certificates import TlsBundle
from goq.operator.identity_certs import issue_identity, new_identity_authority
from goq.operator.x509_issuing import Authority
from goq.sidecar.apis.health import MAX_CONNECTIONS as HEALTH_CONNECTIONS

from . import raw_http2 as h2
from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
Attack = Callable[[], str]

DELIVER = "/goq.v1.Peer/Deliver"
MAX_CONNECTIONS, MAX_STREAMS = 24, 16
"""The peer port's bounds for these tests (``GOQ_PEER_MAX_CONNECTIONS``, ``GOQ_PEER_MAX_STREAMS``): low, so that
floods reach them within a short run."""
RSS_GROWTH_MB = 64
"""Most the receiver's resident memory may grow over a whole test's attacks (it is about 70 MB idle): gRPC's
buffers and Python's allocator keep some of what a flood used; a bound that leaked would grow far beyond."""
BOUNDS = {"GOQ_PEER_MAX_CONNECTIONS": str(MAX_CONNECTIONS), "GOQ_PEER_MAX_STREAMS": str(MAX_STREAMS)}


def rss_mb(sidecar: SidecarProcess) -> float:
    assert sidecar.process is not None
    with open(f"/proc/{sidecar.process.pid}/status") as status:
        [kb] = [int(line.split()[1]) for line in status if line.startswith("VmRSS:")]
    return kb / 1024


def readyz(sidecar: SidecarProcess) -> int:
    try:
        with urllib.request.urlopen(f"{sidecar.health_url}/readyz", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class Watch:
    """The receiver under attack, the honest sender beside it, and what was seen: checked after each attack."""

    def __init__(self, receiver: SidecarProcess, sender: App, app: App) -> None:
        self.receiver, self.sender, self.app = receiver, sender, app
        self.honest = 0
        self.rss_start = rss_mb(receiver)
        self.rss_peak = self.rss_start
        self.arrived: asyncio.Queue[bytes] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None

    async def _consume(self) -> None:
        """One Receive stream for the whole test, each message acknowledged: a stream per message would race
        its cancellation against the next message, which could be leased to the stream going away."""
        with contextlib.suppress(grpc.RpcError, grpc.aio.UsageError):  # the test ended, the channel closed
            async for batch in self.app.stub.Receive(pb.ReceiveRequest(max_in_flight=100, max_batch=100)):
                await self.app.stub.Ack(pb.AckRequest(ids=[m.id for m in batch.messages]))
                for message in batch.messages:
                    self.arrived.put_nowait(message.payload)

    async def arrival(self, within: float = 30.0) -> bytes | None:
        try:
            return await asyncio.wait_for(self.arrived.get(), within)
        except TimeoutError:
            return None

    async def warm_up(self) -> None:
        """One message first: the sender's link is open, the receiver's memory settled."""
        self._consumer = asyncio.get_running_loop().create_task(self._consume())
        await self.sender.send(self.receiver.identity, [b"warm-up"])
        assert await self.arrival() == b"warm-up"
        self.honest += 1
        self.rss_start = self.rss_peak = rss_mb(self.receiver)

    async def during(self, name: str, attack: Attack) -> None:
        """Run ``attack`` (in a thread) while honest messages go one at a time, at least one; then check."""
        done = asyncio.Event()
        slowest = 0.0

        async def honest() -> int:
            nonlocal slowest
            sent = 0
            while True:
                started = time.monotonic()
                payload = f"honest {name} {sent}".encode()
                [result] = await self.sender.send(self.receiver.identity, [payload])
                assert result.WhichOneof("result") == "accepted", result
                got = await self.arrival()
                if got != payload:
                    stats = await self.app.stats()
                    raise AssertionError(f"{payload!r} sent during {name}: got {got!r}; {stats}\n{self.logs()}")
                slowest = max(slowest, time.monotonic() - started)
                sent += 1
                if done.is_set():
                    return sent

        async def attacking() -> str:
            try:
                return await asyncio.to_thread(attack)
            finally:
                done.set()

        started = time.monotonic()
        outcome, sent = await asyncio.gather(attacking(), honest())
        self.honest += sent
        rss = rss_mb(self.receiver)
        self.rss_peak = max(self.rss_peak, rss)
        print(
            f"{name}: {outcome}; {time.monotonic() - started:.1f}s, {sent} honest messages (slowest "
            f"{slowest:.2f}s), receiver RSS {rss:.0f} MB"
        )
        self.check(name)

    def logs(self) -> str:
        """The last lines of both sidecars' logs, for a failure's message."""
        return "\n".join(f"--- {s.name}:\n{s.log()[-4000:]}" for s in (self.receiver, self.sender.sidecar))

    def check(self, name: str) -> None:
        assert self.receiver.process is not None
        assert self.receiver.process.alive(), f"the receiver died during {name}:\n{self.receiver.log()[-3000:]}"
        assert readyz(self.receiver) == 200, f"/readyz after {name}"
        growth = rss_mb(self.receiver) - self.rss_start
        assert growth < RSS_GROWTH_MB, f"RSS grew {growth:.0f} MB by {name}"
        log = self.receiver.log()
        assert "Traceback" not in log, log[-3000:]
        assert '"level": "ERROR"' not in log, log[-3000:]

    async def finish(self) -> None:
        """Nothing an attacker sent reached the application: it received exactly the honest messages."""
        assert await self.arrival(within=0.3) is None
        assert self._consumer is not None
        self._consumer.cancel()
        assert (await self.app.stats()).received == self.honest
        print(
            f"receiver RSS {self.rss_start:.0f} MB after warm-up, peak {self.rss_peak:.0f} MB, end "
            f"{rss_mb(self.receiver):.0f} MB; {self.honest} honest messages delivered"
        )


# -- attacks on the peer port (HTTP/2) --------------------------------------------------------------------------


def garbage_before_the_preface(port: int, tls: ssl.SSLContext | None, rng: random.Random) -> Attack:
    def attack() -> str:
        closed = 0
        for size in (1, 24, 100, 5000, 70_000):
            connection = h2.connect(port, tls, preface=False)
            connection.send(rng.randbytes(size))
            connection.drain(0.5)
            closed += connection.closed
            connection.close()
        return f"{closed} of 5 connections closed by the server"

    return attack


def random_frames(port: int, tls: ssl.SSLContext | None, rng: random.Random, connections: int = 20) -> Attack:
    """After the preface: frames of random types, flags, streams and payloads, some with lengths that lie."""

    def attack() -> str:
        closed = sent = 0
        for _ in range(connections):
            connection = h2.connect(port, tls)
            for _ in range(rng.randrange(1, 60)):
                kind = rng.choice([rng.randrange(0, 12), rng.randrange(0, 256)])
                payload = rng.randbytes(rng.choice([0, 1, 4, 8, 9, 64, 600]))
                data = h2.frame(kind, rng.randrange(0, 256), rng.choice([0, 1, 3, rng.randrange(0, 2**32)]), payload)
                if rng.random() < 0.1:  # a length that is not the payload's
                    data = rng.randbytes(3) + data[3:]
                if not connection.send(data):
                    break
                sent += 1
            connection.drain(0.2)
            closed += connection.closed
            connection.close()
        return f"{sent} frames on {connections} connections, {closed} closed by the server"

    return attack


def settings_flood(port: int, tls: ssl.SSLContext | None) -> Attack:
    """SETTINGS frames without reading the acknowledgements: the server stops reading, or acknowledges them all."""

    def attack() -> str:
        connection = h2.connect(port, tls)
        sent = connection.flood(
            (h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", 4, 65_535 + n)) for n in range(20_000)), burst=10**9
        )
        connection.drain(0.5)
        connection.close()
        return f"{sent} SETTINGS sent"

    return attack


def ping_flood(port: int, tls: ssl.SSLContext | None) -> Attack:
    """PINGs without data: cut after ``PING_STRIKES`` with GOAWAY ENHANCE_YOUR_CALM."""

    def attack() -> str:
        connection = h2.connect(port, tls)
        # read after each ping: the server's GOAWAY is followed by a reset, which drops what was not read
        sent = connection.flood((h2.frame(h2.PING, 0, 0, struct.pack(">Q", n)) for n in range(1000)), burst=1)
        connection.drain(1.0)
        goaway = [f for f in connection.frames() if f.kind == h2.GOAWAY]
        connection.close()
        assert connection.closed, f"a flood of {sent} pings was not cut"
        assert goaway, f"closed after {sent} pings without a GOAWAY"
        assert int.from_bytes(goaway[-1].payload[4:8], "big") == h2.ENHANCE_YOUR_CALM
        return f"cut after {sent} PINGs: GOAWAY {goaway[-1].payload[8:].decode(errors='replace')!r}"

    return attack


def rapid_reset(port: int, tls: ssl.SSLContext | None, streams: int = 5000) -> Attack:
    """A call opened and cancelled at once, over and over (CVE-2023-44487)."""

    def attack() -> str:
        connection = h2.connect(port, tls)
        sent = 0
        for stream in range(1, 2 * streams, 2):
            opened = h2.frame(h2.HEADERS, h2.END_HEADERS, stream, h2.grpc_request(DELIVER))
            if not connection.send(opened + h2.frame(h2.RST_STREAM, 0, stream, struct.pack(">I", 8))):
                break
            sent += 1
        connection.drain(0.5)
        connection.close()
        return f"{sent} calls opened and reset"

    return attack


def oversized_headers(port: int, tls: ssl.SSLContext | None) -> Attack:
    """A header block over the bound in one HEADERS, and one spread over endless CONTINUATION frames."""

    def attack() -> str:
        big = h2.connect(port, tls)
        big.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, h2.grpc_request(DELIVER, [("x-big", "a" * 40_000)])))
        big.drain(1.0)
        refused = big.closed or any(f.kind == h2.RST_STREAM for f in big.frames())
        assert refused, "a 40 KB header block was taken"
        big.close()
        endless = h2.connect(port, tls)
        endless.send(h2.frame(h2.HEADERS, 0, 1, h2.grpc_request(DELIVER)))
        sent = 0
        for _ in range(20_000):
            if not endless.send(h2.frame(h2.CONTINUATION, 0, 1, h2.header_block([("x-more", "b" * 100)]))):
                break
            sent += 1
        endless.drain(0.5)
        endless.close()
        return f"40 KB block refused; {sent} CONTINUATION frames ({sent * 110 // 1024} KB) sent"

    return attack


def many_streams(port: int, tls: ssl.SSLContext | None, streams: int = 200) -> Attack:
    """More open calls on one connection than ``GOQ_PEER_MAX_STREAMS``: those beyond it are refused."""

    def attack() -> str:
        connection = h2.connect(port, tls)
        for stream in range(1, 2 * streams, 2):
            connection.send(h2.frame(h2.HEADERS, h2.END_HEADERS, stream, h2.grpc_request(DELIVER)))
        connection.drain(1.0)
        reset = {f.stream for f in connection.frames() if f.kind == h2.RST_STREAM}
        connection.close()
        assert len(reset) >= streams - MAX_STREAMS, f"only {len(reset)} of {streams} streams refused"
        return f"{len(reset)} of {streams} streams refused"

    return attack


def connection_flood(port: int, tls: ssl.SSLContext | None, connections: int = 3 * MAX_CONNECTIONS) -> Attack:
    """More connections than ``GOQ_PEER_MAX_CONNECTIONS``, held open: those beyond the bound are closed at once."""

    def attack() -> str:
        opened: list[h2.Connection] = []
        try:
            for _ in range(connections):
                try:
                    opened.append(h2.connect(port, tls))
                except (OSError, ssl.SSLError):
                    continue  # refused during the TLS handshake: closed at the bound
            for connection in opened:
                connection.drain(0.05)
            held = sum(not c.closed for c in opened)
        finally:
            for connection in opened:
                connection.close()
        assert held <= MAX_CONNECTIONS, f"{held} connections held, beyond the bound of {MAX_CONNECTIONS}"
        return f"{held} of {connections} connections held (bound {MAX_CONNECTIONS}, the honest sender's among them)"

    return attack


# -- attacks on the health port (HTTP/1.1) ----------------------------------------------------------------------


def exchange(port: int, data: bytes, *, half_close: bool = False, seconds: float = 0.5) -> bytes:
    connection = h2.connect(port, preface=False)
    connection.send(data)
    if half_close:
        connection.sock.shutdown(socket.SHUT_WR)
    answer = connection.drain(seconds)
    connection.close()
    return answer


def malformed_http1(port: int, rng: random.Random) -> Attack:
    cases = [
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 200 "),
        (b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 405 "),
        (b"GARBAGE\r\n\r\n", b"HTTP/1.1 400 "),
        (b"GET /readyz HTTP/9.9\r\nHost: x\r\n\r\n", b"HTTP/1.1 "),  # h11 takes any 1-digit version
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", b"HTTP/1.1 431 "),
        (b"GET /readyz HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % n for n in range(10_000)) + b"\r\n", b"HTTP/1.1 431 "),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", b"HTTP/1.1 400 "),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", b"HTTP/1.1 400 "),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", b"HTTP/1.1 501 "),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"HTTP/1.1 200 "),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", b"HTTP/1.1 "),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /livez HTTP/1.1\r\n\x00\x01junk\r\n\r\n", b"HTTP/1.1 200 "),
        (b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 400 "),
        (b"GET /readyz HTTP/1.1\r\nHo\x00st: x\r\n\r\n", b"HTTP/1.1 400 "),
        (
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n",
            b"HTTP/1.1 ",
        ),
        (b"GET /readyz HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", b"HTTP/1.1 200 "),
        (h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0), b"HTTP/1.1 "),
    ]

    def attack() -> str:
        for request, expected in cases:
            answer = exchange(port, request)
            assert answer.startswith(expected), (request[:60], answer[:200])
        half_open = exchange(port, b"GET /readyz HTTP/1.1\r\nHo", half_close=True)
        assert half_open == b"" or half_open.startswith(b"HTTP/1.1 4"), half_open[:200]
        pipelined = exchange(port, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n" * 200 + rng.randbytes(2000), seconds=2.0)
        assert pipelined.count(b"HTTP/1.1 200 ") == 200, pipelined.count(b"HTTP/1.1 200 ")
        for _ in range(60):
            line = rng.choice([b"GET", b"POST", rng.randbytes(5)]) + b" " + rng.randbytes(rng.randrange(0, 40))
            exchange(port, line + b" HTTP/1.1\r\n" + rng.randbytes(rng.randrange(0, 300)) + b"\r\n\r\n", seconds=0.2)
        return f"{len(cases)} malformed requests answered as expected, a half-open one, 200 pipelined, 60 random"

    return attack


def slow_and_many_http1(port: int) -> Attack:
    """Twice the connection bound held open, some trickling a head a byte at a time: the probe still answers."""

    def attack() -> str:
        opened = [h2.connect(port, preface=False) for _ in range(2 * HEALTH_CONNECTIONS)]
        try:
            for second in range(3):
                for connection in opened[::4]:
                    connection.send(b"GET /readyz HTTP/1.1\r\n"[second : second + 1])
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as probe:
                    assert probe.status == 200
                time.sleep(0.3)
            for connection in opened:
                connection.drain(0.01)
            held = sum(not c.closed for c in opened)
        finally:
            for connection in opened:
                connection.close()
        assert held <= HEALTH_CONNECTIONS, held
        return f"{held} of {2 * HEALTH_CONNECTIONS} connections held (bound {HEALTH_CONNECTIONS}); the probe answered"

    return attack


# -- the tests --------------------------------------------------------------------------------------------------


async def test_the_peer_port_outlasts_malformed_http2_and_floods_while_honest_messages_arrive(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", **BOUNDS)
    billing = group["billing"]
    watch = Watch(billing, apps(group["orders"]), apps(billing))
    await watch.warm_up()
    rng = random.Random(7702)
    port = billing.peer_port
    await watch.during("garbage before the preface", garbage_before_the_preface(port, None, rng))
    await watch.during("random frames", random_frames(port, None, rng))
    await watch.during("SETTINGS flood", settings_flood(port, None))
    await watch.during("PING flood", ping_flood(port, None))
    await watch.during("rapid reset", rapid_reset(port, None))
    await watch.during("oversized headers", oversized_headers(port, None))
    await watch.during("many streams", many_streams(port, None))
    await watch.during("connection flood", connection_flood(port, None))
    await watch.finish()


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def certificate(ca: Authority, identity: str) -> TlsBundle:
    return issue_identity(
        ca,
        Address(identity, "default"),
        trust_domain="cluster.local",
        cluster_domain="cluster.local",
        now=now(),
        lifetime=datetime.timedelta(hours=1),
    )


async def test_the_peer_port_over_mutual_tls_outlasts_strangers_and_a_certificate_holders_malformed_http2(
    sidecars: Sidecars, apps: Apps, tmp_path: Path
) -> None:
    ca = new_identity_authority(now())
    group = sidecars("orders", "billing", start=False, **BOUNDS)
    for name, sidecar in group.items():
        sidecar.env["GOQ_TLS_DIR"] = str(
            SecretVolume(tmp_path / f"tls-{name}", certificate(ca, name).to_secret_data()).path
        )
        sidecar.start()
    billing = group["billing"]
    watch = Watch(billing, apps(group["orders"]), apps(billing))
    await watch.warm_up()
    rng, port = random.Random(7712), billing.peer_port
    insider = certificate(ca, "orders")  # a pod of a real identity, turned hostile
    stranger = h2.client_tls(insider.ca, None, None, str(tmp_path))
    holder = h2.client_tls(insider.ca, insider.cert, insider.key, str(tmp_path))

    def no_certificate() -> str:
        refused = 0
        for _ in range(20):
            try:
                connection = h2.connect(port, stranger)
                connection.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, h2.grpc_request(DELIVER)))
                connection.drain(1.0)
                refused += connection.closed and not connection.frames()
                connection.close()
            except (OSError, ssl.SSLError):
                refused += 1
        assert refused == 20
        return "20 handshakes without a certificate refused"

    await watch.during("plaintext bytes to the TLS port", garbage_before_the_preface(port, None, rng))
    await watch.during("TLS without a certificate", no_certificate)
    await watch.during("garbage after the handshake", garbage_before_the_preface(port, holder, rng))
    await watch.during("random frames over TLS", random_frames(port, holder, rng, connections=10))
    await watch.during("PING flood over TLS", ping_flood(port, holder))
    await watch.during("rapid reset over TLS", rapid_reset(port, holder, streams=2000))
    await watch.during("many streams over TLS", many_streams(port, holder))
    await watch.during("connection flood over TLS", connection_flood(port, holder))
    await watch.finish()


async def test_the_health_port_outlasts_malformed_http1_slow_clients_and_many_connections(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing")
    billing = group["billing"]
    watch = Watch(billing, apps(group["orders"]), apps(billing))
    await watch.warm_up()
    rng = random.Random(7703)
    await watch.during("malformed HTTP/1 on the health port", malformed_http1(billing.health_port, rng))
    await watch.during("malformed HTTP/1 on the REST port", malformed_http1_rest(billing.rest_port, rng))
    await watch.during("slow and many connections", slow_and_many_http1(billing.health_port))
    await watch.finish()


def malformed_http1_rest(port: int, rng: random.Random) -> Attack:
    """The REST port runs the same server: the same garbage, answered without a traceback."""

    def attack() -> str:
        answers = [
            exchange(port, request, seconds=0.5)
            for request in (
                b"HEAD /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GARBAGE\r\n\r\n",
                b"POST /v1/messages?to=billing HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                b"POST /v1/messages?to=billing HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
                rng.randbytes(3000),
            )
        ]
        assert all(a == b"" or a.startswith(b"HTTP/1.1 4") for a in answers), [a[:80] for a in answers]
        return f"{len(answers)} requests answered 4xx or closed"

    return attack


CONTINUATION_FRAMES = 60_000
"""Frames of one header block that never ends, per connection, in the flood that shows gRPC's limitation."""


@pytest.mark.xfail(
    strict=True,
    reason="grpcio 1.85's HTTP/2 server keeps memory for every header field of a block over the size limit until "
    "the block ends, and a block of CONTINUATION frames need never end (docs/sidecar.md, the peer port's bounds)",
)
async def test_a_header_block_of_endless_continuation_frames_costs_bounded_memory(sidecars: Sidecars) -> None:
    """Three connections in turn, each sending one call's headers followed by 60,000 CONTINUATION frames (6.6 MB)
    that never end the block. Measured: the receiver's memory went from 59 to 104 MB; in a bare grpcio server, four
    such connections of 100,000 frames took it from 50 to 128 MB, more with each. Strict: when gRPC bounds it, this
    passes, is reported as XPASS and fails, and the caveat in the docs can go."""
    billing = sidecars("billing", **BOUNDS)["billing"]
    before = rss_mb(billing)

    def flood() -> None:
        block = h2.frame(h2.CONTINUATION, 0, 1, h2.header_block([("x-more", "b" * 100)]))
        for _ in range(3):
            connection = h2.connect(billing.peer_port)
            connection.send(h2.frame(h2.HEADERS, 0, 1, h2.grpc_request(DELIVER)))
            connection.flood((block for _ in range(CONTINUATION_FRAMES)), burst=10**9)
            connection.drain(0.2)
            connection.close()

    await asyncio.to_thread(flood)
    growth = rss_mb(billing) - before
    print(f"CONTINUATION floods: receiver RSS {before:.0f} MB -> {rss_mb(billing):.0f} MB")
    assert billing.process is not None
    assert billing.process.alive()
    assert growth < 24, f"RSS grew {growth:.0f} MB"


EXAMPLES = 100
"""Hypothesis examples (each a byte string to either port): a few seconds."""


async def test_any_bytes_to_the_peer_and_health_ports_leave_the_sidecar_serving(sidecars: Sidecars, apps: Apps) -> None:
    """Byte strings from hypothesis after the HTTP/2 preface on the peer port, and as they are on the health port."""
    group = sidecars("orders", "billing", **BOUNDS)
    billing = group["billing"]
    watch = Watch(billing, apps(group["orders"]), apps(billing))
    await watch.warm_up()

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(peer_bytes=st.binary(max_size=4096), health_bytes=st.binary(max_size=4096))
    def bytes_to_both(peer_bytes: bytes, health_bytes: bytes) -> None:
        peer = h2.connect(billing.peer_port, timeout=0.5)
        health = h2.connect(billing.health_port, preface=False, timeout=0.5)
        peer.send(peer_bytes)
        health.send(health_bytes)
        peer.drain(0.02)
        health.drain(0.02)
        peer.close()
        health.close()

    def run() -> str:
        bytes_to_both()
        return f"{EXAMPLES} byte strings to each port"

    await watch.during("hypothesis bytes", run)
    await watch.finish()
