"""The sidecar's small HTTP server and client, over real sockets on loopback.

Routes with ``{name}`` parts (percent-decoded, ``%2F`` included), 404 and 405 with what is allowed,
bodies streamed in and out, keep-alive across requests that do and do not read their body,
``Expect: 100-continue`` answered or refused before the body, malformed requests refused with 400,
and a shutdown that lets a running request finish within its grace and cuts it after.
"""

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest

from goq.sidecar.http_client import HttpClientError, request
from goq.sidecar.http_server import HttpServer, Request, Response, Router


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


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    routes = Router()
    routes.add("POST", "/items/{id}", echo, expect=refuse_early)
    routes.add("GET", "/items/{id}", echo)
    routes.add("GET", "/lines", counted)
    http = HttpServer(routes)
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


async def test_shutdown_cuts_a_request_still_running_after_its_grace() -> None:
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


async def test_a_client_call_to_a_closed_port_fails_with_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(HttpClientError, match=f"cannot connect to 127.0.0.1:{port}"):
        async with request("GET", f"http://127.0.0.1:{port}/"):
            pass
