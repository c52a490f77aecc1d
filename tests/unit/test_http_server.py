"""The sidecar's small HTTP server and client, over real sockets on loopback.

Routes with ``{name}`` parts (percent-decoded, ``%2F`` included), 404 and 405 with what is allowed,
bodies streamed in and out, keep-alive across requests that do and do not read their body,
``Expect: 100-continue`` answered or refused before the body, malformed requests refused with 400,
and a shutdown that lets a running request finish within its grace and cuts it after. And clients
that are slow or gone: a body cut short (400, no traceback), a head or body that trickles or stalls
(408 after the timeout), an answer never read, and more connections than the bound.
"""

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Callable

import pytest

from goq.sidecar.adapters.kube.http_client import HttpClientError, request
from goq.sidecar.apis.http_protocol import Request, Response
from goq.sidecar.apis.http_routing import Router
from goq.sidecar.apis.http_server import HttpServer


async def echo(request: Request) -> Response:
    body = b"".join([data async for data in request.chunks()])
    answer = {"id": request.params.get("id"), "query": request.query, "type": request.content_type, "size": len(body)}
    return Response(body=json.dumps(answer).encode(), content_type="application/json")


async def counted(request: Request) -> Response:
    async def pieces() -> AsyncIterator[bytes]:
        for n in range(3):
            yield f"line {n}\n".encode()

    return Response(stream=pieces(), content_type="text/plain")


async def refuse_early(request: Request) -> Response | None:
    return Response(413, b"too big\n") if request.content_length and request.content_length > 10 else None


def items() -> Router:
    routes = Router()
    routes.add("POST", "/items/{id}", echo, expect=refuse_early)
    routes.add("GET", "/items/{id}", echo)
    routes.add("GET", "/lines", counted)
    return routes


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    http = HttpServer(items())
    await http.start("127.0.0.1", 0)
    yield http
    await http.close()


@pytest.fixture
async def impatient() -> AsyncIterator[HttpServer]:
    """The same routes with timeouts of half a second, so that slow clients are dealt with quickly."""
    http = HttpServer(items(), head_timeout=0.5, body_timeout=0.5, send_timeout=0.5)
    await http.start("127.0.0.1", 0)
    yield http
    await http.close()


async def exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, then read until the server closes or stays silent (in a thread: the server runs
    on this test's event loop)."""
    return await asyncio.to_thread(_exchange, port, data)


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
        raw.sendall(data)
        got = b""
        try:
            while chunk := raw.recv(65536):
                got += chunk
        except TimeoutError:
            pass
        return got


async def test_a_route_part_is_percent_decoded_and_the_query_kept_in_order(server: HttpServer) -> None:
    url = f"http://127.0.0.1:{server.port}/items/a%2Fb%3Fc"
    async with request("POST", url, params={"x": "1", "y": ""}, body=b"hello") as reply:
        assert reply.status == 200
        answer = json.loads(await reply.read())
    assert answer == {"id": "a/b?c", "query": [["x", "1"], ["y", ""]], "type": "application/octet-stream", "size": 5}


async def test_unknown_paths_are_404_and_wrong_methods_405_naming_the_allowed_ones(server: HttpServer) -> None:
    async with request("GET", f"http://127.0.0.1:{server.port}/nothing") as reply:
        assert (reply.status, await reply.read()) == (404, b"no such endpoint: /nothing\n")
    async with request("DELETE", f"http://127.0.0.1:{server.port}/items/1") as reply:
        assert reply.status == 405
        assert await reply.read() == b"DELETE is not allowed on /items/1; allowed: GET, POST\n"


async def test_a_streamed_answer_arrives_whole_and_in_order(server: HttpServer) -> None:
    async with request("GET", f"http://127.0.0.1:{server.port}/lines") as reply:
        assert [line async for line in reply.lines()] == [b"line 0", b"line 1", b"line 2"]


async def test_one_connection_serves_requests_that_did_and_did_not_read_a_body(server: HttpServer) -> None:
    two_gets_and_a_post = (
        b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /items/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    got = await exchange(server.port, two_gets_and_a_post)
    assert got.count(b"HTTP/1.1 200 OK") == 2
    assert got.count(b"HTTP/1.1 404 Not Found") == 1
    assert b'"id": "2"' in got


async def test_expect_100_continue_is_answered_before_the_body(server: HttpServer) -> None:
    def run() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
            raw.sendall(b"POST /items/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            interim = raw.recv(4096)
            raw.sendall(b"abcd")
            final = raw.recv(4096)
            while not final.endswith(b"}"):
                final += raw.recv(4096)
            return interim, final

    interim, final = await asyncio.to_thread(run)
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert final.startswith(b"HTTP/1.1 200 ")
    assert b'"size": 4' in final


async def test_a_refusal_comes_instead_of_the_100_and_the_body_is_never_needed(server: HttpServer) -> None:
    ask = b"POST /items/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\nExpect: 100-continue\r\n\r\n"
    got = await exchange(server.port, ask)
    assert got.startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in got


async def test_an_unknown_expectation_is_refused_with_417(server: HttpServer) -> None:
    got = await exchange(server.port, b"POST /items/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: tea\r\n\r\nx")
    assert got.startswith(b"HTTP/1.1 417 ")
    assert b"only 100-continue" in got


async def test_a_malformed_request_is_refused_with_400_and_the_connection_closed(server: HttpServer) -> None:
    got = await exchange(server.port, b"GET /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 400 ")
    assert b"malformed HTTP request" in got


@pytest.mark.parametrize("pieces", [1, 2, 7])
async def test_a_head_over_the_bound_is_refused_with_431_however_it_arrives(server: HttpServer, pieces: int) -> None:
    """Found by the port fuzz: h11 measures a head only while it is incomplete, so a 100 KB head that arrived in two
    reads of 64 KB was taken whole."""
    head = b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"

    def run() -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
            step = len(head) // pieces + 1
            try:
                for start in range(0, len(head), step):
                    raw.sendall(head[start : start + step])
            except OSError:  # refused before all of it was sent
                pass
            return _read_all(raw)

    got = await asyncio.to_thread(run)
    assert got.startswith(b"HTTP/1.1 431 "), got[:100]


async def test_a_head_just_under_the_bound_is_served_and_so_are_requests_pipelined_behind_it(
    server: HttpServer,
) -> None:
    head = b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: "
    big = head + b"a" * (64 * 1024 - len(head) - 4) + b"\r\n\r\n"
    got = await exchange(server.port, big + b"GET /items/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert got.count(b"HTTP/1.1 200 ") == 2, got[:300]


async def test_a_head_request_is_answered_with_a_head_alone_and_keeps_its_connection(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by the port fuzz: h11 refuses a body after a HEAD, so the 405 failed with a traceback each time."""
    head = b"HEAD /items/1 HTTP/1.1\r\nHost: x\r\n\r\n"
    got = await exchange(server.port, head + b"GET /items/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, rest = got.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 405 ")
    assert b"content-length: " in first.lower()  # the length of the body a GET would have had
    assert rest.startswith(b"HTTP/1.1 200 ")  # no body came between: the next answer follows the head
    assert b'"id": "2"' in rest
    assert _problems(caplog) == []


async def test_shutdown_lets_a_running_request_finish_within_its_grace() -> None:
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()
        return Response(body=b"done")

    routes = Router()
    routes.add("GET", "/slow", slow)
    http = HttpServer(routes)
    await http.start("127.0.0.1", 0)

    async def call() -> tuple[int, bytes]:
        async with request("GET", f"http://127.0.0.1:{http.port}/slow") as reply:
            return reply.status, await reply.read()

    answer = asyncio.create_task(call())
    await asyncio.sleep(0.1)
    closing = asyncio.create_task(http.close(grace=5))
    await asyncio.sleep(0.1)
    release.set()
    await closing
    assert await answer == (200, b"done")


async def test_shutdown_cuts_a_request_still_running_after_its_grace(caplog: pytest.LogCaptureFixture) -> None:
    async def forever(request: Request) -> Response:
        await asyncio.Event().wait()
        return Response()

    routes = Router()
    routes.add("GET", "/forever", forever)
    http = HttpServer(routes)
    await http.start("127.0.0.1", 0)

    async def call() -> None:
        async with request("GET", f"http://127.0.0.1:{http.port}/forever"):
            pass

    answer = asyncio.create_task(call())
    await asyncio.sleep(0.1)
    await asyncio.wait_for(http.close(grace=0.2), 5)
    with pytest.raises(HttpClientError):
        await answer
    await asyncio.sleep(0.05)  # the connection task's end is reported a moment later
    assert _problems(caplog) == []  # a connection cut on shutdown is no error


async def test_a_client_call_to_a_closed_port_fails_with_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HttpClientError, match=f"cannot connect to 127.0.0.1:{port}"):
        async with request("GET", f"http://127.0.0.1:{port}/"):
            pass


# Clients that are slow, gone, or too many.


def _read_all(raw: socket.socket) -> bytes:
    """Everything until the server closes (or the socket's timeout passes)."""
    got = b""
    try:
        while chunk := raw.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def _closes_within(raw: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``raw`` within ``seconds`` (its data, if any, read and dropped)."""
    raw.settimeout(seconds)
    try:
        while raw.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


async def until(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


def _problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


async def test_a_body_cut_short_by_a_half_close_is_answered_400_without_a_traceback(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    def run() -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
            raw.sendall(b"POST /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            raw.shutdown(socket.SHUT_WR)
            return _read_all(raw)

    got = await asyncio.to_thread(run)
    assert got.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in got.lower()
    assert b"the request body broke off before its end" in got
    assert b"received 10 bytes, expected 100" in got
    assert _problems(caplog) == []


async def test_a_body_cut_short_by_a_close_leaves_no_connection_and_no_traceback(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    def run() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as raw:
            raw.sendall(b"POST /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")

    await asyncio.to_thread(run)
    await until(lambda: server.connections == 0)
    assert _problems(caplog) == []


async def test_a_head_trickled_a_byte_at_a_time_is_answered_408_after_the_head_timeout(
    impatient: HttpServer,
) -> None:
    def run() -> tuple[bytes, float]:
        head = b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"y" * 100 + b"\r\n\r\n"
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", impatient.port), timeout=2) as raw:
            try:
                for byte in head:
                    raw.sendall(bytes([byte]))
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed while trickling: what is read below says why
            return _read_all(raw), time.monotonic() - started

    got, took = await asyncio.to_thread(run)
    assert got.startswith(b"HTTP/1.1 408 ")
    assert b"the request head did not arrive whole within 0.5 s" in got
    assert took < 2.0 + 0.5  # not held for the 6 s the trickle would take; 2 s is the client's read timeout


async def test_a_request_line_without_its_blank_line_is_answered_408_after_the_head_timeout(
    impatient: HttpServer,
) -> None:
    def run() -> tuple[bytes, float]:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", impatient.port), timeout=5) as raw:
            raw.sendall(b"GET /items/1 HTTP/1.1\r\n")
            return _read_all(raw), time.monotonic() - started

    got, took = await asyncio.to_thread(run)
    assert got.startswith(b"HTTP/1.1 408 ")
    assert 0.4 < took < 2.0


async def test_a_connection_that_sends_nothing_is_closed_quietly_after_the_head_timeout(
    impatient: HttpServer,
) -> None:
    def run() -> bytes:
        with socket.create_connection(("127.0.0.1", impatient.port), timeout=3) as raw:
            return _read_all(raw)

    started = time.monotonic()
    assert await asyncio.to_thread(run) == b""
    assert time.monotonic() - started < 2.0


async def test_a_kept_alive_connection_waits_the_idle_timeout_not_the_head_timeout(impatient: HttpServer) -> None:
    def run() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", impatient.port), timeout=3) as raw:
            raw.sendall(b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            first = raw.recv(65536)
            time.sleep(1.0)  # twice the head timeout, well within the idle timeout
            raw.sendall(b"GET /items/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return first, _read_all(raw)

    first, second = await asyncio.to_thread(run)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 200 ")
    assert b'"id": "2"' in second


async def test_a_stalled_body_is_answered_408_after_the_body_timeout(impatient: HttpServer) -> None:
    def run() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", impatient.port), timeout=3) as raw:
            raw.sendall(b"POST /items/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            started = time.monotonic()
            return _read_all(raw), time.monotonic() - started

    got, took = await asyncio.to_thread(run)
    assert got.startswith(b"HTTP/1.1 408 ")
    assert b"no byte of the request body arrived for 0.5 s" in got
    assert b"connection: close" in got.lower()
    assert 0.4 < took < 2.0


async def test_an_unread_body_that_stalls_after_the_answer_closes_the_connection(impatient: HttpServer) -> None:
    def run() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", impatient.port), timeout=3) as raw:
            raw.sendall(b"POST /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
            started = time.monotonic()
            return _read_all(raw), time.monotonic() - started

    got, took = await asyncio.to_thread(run)
    assert got.startswith(b"HTTP/1.1 404 ")
    assert took < 2.0


async def test_a_refusal_before_100_continue_closes_the_connection_at_once(server: HttpServer) -> None:
    def run() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"POST /items/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\nExpect: 100-continue\r\n\r\n")
            started = time.monotonic()
            return _read_all(raw), time.monotonic() - started

    got, took = await asyncio.to_thread(run)
    assert got.startswith(b"HTTP/1.1 413 ")
    assert took < 1.0


async def test_an_answer_nobody_reads_is_given_up_after_the_send_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async def endless(request: Request) -> Response:
        async def pieces() -> AsyncIterator[bytes]:
            while True:
                yield b"x" * 1024 * 1024

        return Response(stream=pieces(), content_type="application/octet-stream")

    routes = Router()
    routes.add("GET", "/endless", endless)
    http = HttpServer(routes, send_timeout=0.5)
    await http.start("127.0.0.1", 0)
    try:
        with socket.socket() as raw:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            raw.connect(("127.0.0.1", http.port))
            raw.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
            await until(lambda: http.connections == 1)
            await until(lambda: http.connections == 0, within=5.0)  # nothing read: given up
    finally:
        await http.close()
    assert _problems(caplog) == []


async def test_a_streamed_answer_whose_client_went_away_ends_with_its_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Small pieces leave at once (nothing waits in the buffer), so the write alone never finds out that
    the client is gone: the connection must still end, the stream stop, and nothing be logged."""
    produced = 0

    async def endless(request: Request) -> Response:
        async def pieces() -> AsyncIterator[bytes]:
            nonlocal produced
            while True:
                produced += 1
                yield b"x" * 512
                await asyncio.sleep(0.005)

        return Response(stream=pieces(), content_type="application/octet-stream")

    routes = Router()
    routes.add("GET", "/endless", endless)
    http = HttpServer(routes)
    await http.start("127.0.0.1", 0)
    try:
        raw = socket.create_connection(("127.0.0.1", http.port), timeout=2)
        raw.sendall(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.to_thread(raw.recv, 4096)
        raw.close()
        await until(lambda: http.connections == 0, within=3.0)
        stopped_at = produced
        await asyncio.sleep(0.2)
        assert produced == stopped_at  # the stream was closed with its connection
    finally:
        await http.close()
    assert _problems(caplog) == []


async def test_idle_connections_beyond_the_bound_make_room_and_a_request_is_still_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    http = HttpServer(items(), head_timeout=30, max_connections=4)
    await http.start("127.0.0.1", 0)
    try:
        idle = [socket.create_connection(("127.0.0.1", http.port)) for _ in range(4)]
        await until(lambda: http.connections == 4)
        trickling = socket.create_connection(("127.0.0.1", http.port))
        trickling.sendall(b"GET /items/1 HT")  # a head begun, never finished
        await until(lambda: http.connections == 4)  # the oldest idle one made room
        assert await asyncio.to_thread(_closes_within, idle[0], 1.0)
        async with request("GET", f"http://127.0.0.1:{http.port}/items/9") as reply:
            assert reply.status == 200
            assert json.loads(await reply.read())["id"] == "9"
        assert await asyncio.to_thread(_closes_within, idle[1], 1.0)
        assert not await asyncio.to_thread(_closes_within, idle[3], 0.2)  # the newest are kept
        assert not await asyncio.to_thread(_closes_within, trickling, 0.2)
        assert http.connections <= 4
        for raw in [*idle, trickling]:
            raw.close()
    finally:
        await http.close()
    assert _problems(caplog) == []  # closing a connection to make room is no error


async def test_when_every_connection_is_busy_a_new_one_is_refused_503_and_the_busy_ones_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()
        return Response(body=b"done")

    routes = Router()
    routes.add("GET", "/slow", slow)
    http = HttpServer(routes, max_connections=2)
    await http.start("127.0.0.1", 0)

    async def call() -> tuple[int, bytes]:
        async with request("GET", f"http://127.0.0.1:{http.port}/slow") as reply:
            return reply.status, await reply.read()

    try:
        busy = [asyncio.create_task(call()) for _ in range(2)]
        await until(lambda: http.connections == 2)
        await asyncio.sleep(0.1)  # both heads read: busy with a request, not waiting for one
        got = await exchange(http.port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 503 ")
        assert b"busy: 2 connections are being served; retry shortly" in got
        assert http.refused == 1
        assert any("all busy with requests: refused 1" in m for m in _problems(caplog))
        release.set()
        assert await asyncio.gather(*busy) == [(200, b"done"), (200, b"done")]
    finally:
        await http.close()


async def test_a_flood_of_refusals_at_the_bound_logs_the_first_then_one_line_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def slow(request: Request) -> Response:
        await release.wait()
        return Response(body=b"done")

    routes = Router()
    routes.add("GET", "/slow", slow)
    http = HttpServer(routes, max_connections=1, refusal_log_interval=1.0)
    await http.start("127.0.0.1", 0)

    async def call() -> int:
        async with request("GET", f"http://127.0.0.1:{http.port}/slow") as reply:
            await reply.read()
            return reply.status

    def refusals() -> list[str]:
        return [m for m in _problems(caplog) if "all busy with requests" in m]

    def refused_in(line: str) -> int:
        found = re.search(r"refused (\d+) (new one|more in the last)", line)
        assert found is not None, line
        return int(found[1])

    try:
        busy = asyncio.create_task(call())
        await until(lambda: http.connections == 1)
        await asyncio.sleep(0.1)  # its head read: busy with a request
        for _ in range(4):
            assert (await exchange(http.port, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(b"HTTP/1.1 503 ")
        assert http.refused == 4
        # The tail of the flood is summed up without a further refusal, so every refusal is in the log.
        await until(lambda: sum(map(refused_in, refusals())) == 4)
        first, *summaries = refusals()
        assert first.endswith("all busy with requests: refused 1 new one")
        assert 1 <= len(summaries) < 3, "at most one line per interval, not one per refusal"
        release.set()
        assert await busy == 200
    finally:
        await http.close()
