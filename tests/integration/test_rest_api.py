"""The REST API of real sidecar processes (with a real MongoDB): every call, success and error paths.

What one application sends over REST, the other receives over REST; error answers are JSON with the
status the engine's error means, and a refused send leaves nothing behind (``sent`` stays 0).
"""

import asyncio
import base64
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import yarl

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Json = dict[str, Any]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class RestApp:
    """An application using its sidecar's REST API, answering (status, JSON body or None)."""

    def __init__(self, sidecar: SidecarProcess, session: aiohttp.ClientSession) -> None:
        self.url = sidecar.rest_url
        self.session = session

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.url + path, **kwargs) as response:
            body = await response.read()
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, body or None

    async def send(self, to: str, payload: bytes, **fields: Any) -> tuple[int, Any]:
        return await self.call("POST", "/v1/messages", json={"to": to, "payload": b64(payload), **fields})

    async def receive(self, count: int, *, within: float = 20.0) -> list[Json]:
        """Long-poll until ``count`` messages arrived (or ``within`` seconds passed); not acknowledged."""
        got: list[Json] = []
        deadline = asyncio.get_running_loop().time() + within
        while len(got) < count and (left := deadline - asyncio.get_running_loop().time()) > 0:
            status, body = await self.call(
                "GET", "/v1/messages", params={"max": count - len(got), "wait": min(left, 5)}
            )
            assert status == 200, body
            got.extend(body["messages"])
        return got

    async def stats(self) -> Json:
        status, body = await self.call("GET", "/v1/stats")
        assert status == 200
        return dict(body)


@pytest.fixture
async def rest() -> AsyncIterator[Callable[[SidecarProcess], RestApp]]:
    async with aiohttp.ClientSession() as session:
        yield lambda sidecar: RestApp(sidecar, session)


Rest = Callable[[SidecarProcess], RestApp]


def error_of(body: Json) -> tuple[str, str]:
    assert set(body) == {"error"}, body
    return body["error"]["code"], body["error"]["message"]


async def test_a_json_message_reaches_the_other_application_with_its_fields(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    status, receipt = await orders.send("billing", b"\x00charge\xff", headers={"kind": "invoice"}, id="order-1")
    assert (status, receipt) == (202, {"id": "order-1", "state": "queued"})
    (message,) = await billing.receive(1)
    assert message["id"] == "order-1"
    assert (message["from"], message["to"]) == ("orders.default", "billing.default")
    assert base64.b64decode(message["payload"]) == b"\x00charge\xff"
    assert (message["headers"], message["persistent"], message["attempt"]) == ({"kind": "invoice"}, True, 1)
    assert message["sentAt"].endswith("Z")
    assert await billing.call("POST", "/v1/messages/order-1/ack") == (204, None)
    assert (await billing.stats())["acknowledged"] == 1


async def test_a_raw_octet_stream_body_is_sent_as_the_payload(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    status, receipt = await orders.call(
        "POST",
        "/v1/messages",
        params={"to": "billing", "persistent": "false", "id": "raw-1"},
        data=b"raw bytes",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert (status, receipt) == (202, {"id": "raw-1", "state": "queued"})
    (message,) = await billing.receive(1)
    assert (base64.b64decode(message["payload"]), message["persistent"]) == (b"raw bytes", False)


async def test_receive_with_nothing_waiting_returns_an_empty_list_after_the_wait(
    sidecars: Sidecars, rest: Rest
) -> None:
    app = rest(sidecars("orders")["orders"])
    started = asyncio.get_running_loop().time()
    assert await app.call("GET", "/v1/messages", params={"wait": "0.5"}) == (200, {"messages": []})
    assert asyncio.get_running_loop().time() - started >= 0.45


async def test_a_long_poll_returns_as_soon_as_a_message_arrives(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    poll = asyncio.create_task(billing.call("GET", "/v1/messages", params={"max": "5", "wait": "30"}))
    await orders.send("billing", b"wake up")
    status, body = await asyncio.wait_for(poll, 20)
    assert status == 200
    assert [base64.b64decode(m["payload"]) for m in body["messages"]] == [b"wake up"]


async def test_max_bounds_how_many_messages_one_receive_leases(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    for n in range(3):
        await orders.send("billing", b"%d" % n)
    got = await billing.receive(3)
    assert len(got) == 3
    for message in got:  # give them all back, then take two
        assert await billing.call("POST", f"/v1/messages/{message['id']}/nack", json={"requeue": True}) == (204, None)
    status, body = await billing.call("GET", "/v1/messages", params={"max": "2", "wait": "5"})
    assert (status, len(body["messages"])) == (200, 2)
    assert {m["attempt"] for m in body["messages"]} == {2}


async def test_an_unacknowledged_message_comes_back_when_its_lease_runs_out(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing", GOQ_LEASE="1s")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    await orders.send("billing", b"again")
    (first,) = await billing.receive(1)
    (second,) = await billing.receive(1)
    assert (second["id"], second["attempt"]) == (first["id"], 2)
    assert await billing.call("POST", f"/v1/messages/{first['id']}/ack") == (204, None)


async def test_acknowledging_twice_or_an_unknown_id_is_not_found(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    await orders.send("billing", b"x", id="once")
    await billing.receive(1)
    assert await billing.call("POST", "/v1/messages/once/ack") == (204, None)
    status, body = await billing.call("POST", "/v1/messages/once/ack")
    assert status == 404
    assert error_of(body) == (
        "not_found",
        "message 'once' is not leased to the application (never received, already acknowledged, or its lease ran out)",
    )
    status, body = await billing.call("POST", "/v1/messages/nope/nack", json={"requeue": True})
    assert (status, error_of(body)) == (404, ("not_found", "message 'nope' is not leased to the application"))


async def test_many_messages_are_acknowledged_in_one_request_and_the_ids_not_leased_are_listed(
    sidecars: Sidecars, rest: Rest
) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    for i in range(3):
        await orders.send("billing", b"x", id=f"m{i}", persistent=False)
    await billing.receive(3)
    status, body = await billing.call("POST", "/v1/messages/ack", json={"ids": ["m0", "m1", "m2", "nope"]})
    assert (status, body) == (200, {"unknown": ["nope"]})
    stats = await billing.stats()
    assert (stats["acknowledged"], stats["inFlight"]) == (3, 0)
    assert await billing.call("POST", "/v1/messages/ack", json={"ids": ["m0"]}) == (200, {"unknown": ["m0"]})
    status, body = await billing.call("POST", "/v1/messages/ack", json={"id": "m0"})
    assert (status, error_of(body)) == (
        400,
        ("bad_request", "the acknowledgement has unknown field(s) 'id'; allowed: ids"),
    )
    status, body = await billing.call("POST", "/v1/messages/ack", json={"ids": ["x"] * 10_001})
    assert (status, error_of(body)) == (
        400,
        ("bad_request", '"ids" is required: a list of at most 10000 message ids'),
    )


async def test_a_nack_with_a_delay_hands_the_message_out_again_only_after_it(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    await orders.send("billing", b"later")
    (message,) = await billing.receive(1)
    nack = {"requeue": True, "delay": 1.5, "reason": "busy"}
    assert await billing.call("POST", f"/v1/messages/{message['id']}/nack", json=nack) == (204, None)
    assert await billing.call("GET", "/v1/messages", params={"wait": "0.5"}) == (200, {"messages": []})
    (again,) = await billing.receive(1, within=10)
    assert (again["id"], again["attempt"]) == (message["id"], 2)


async def test_a_nack_without_requeue_poisons_and_redrive_hands_it_back(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    await orders.send("billing", b"bad", headers={"h": "v"}, id="p-1")
    await billing.receive(1)
    nack = {"requeue": False, "reason": "cannot parse"}
    assert await billing.call("POST", "/v1/messages/p-1/nack", json=nack) == (204, None)
    status, body = await billing.call("GET", "/v1/poison", params={"limit": "10"})
    assert status == 200
    (poisoned,) = body["messages"]
    assert (poisoned["id"], poisoned["direction"], poisoned["peer"]) == ("p-1", "inbound", "orders.default")
    assert (poisoned["reason"], poisoned["detail"]) == ("nack", "rejected by the application: cannot parse")
    assert (base64.b64decode(poisoned["payload"]), poisoned["headers"]) == (b"bad", {"h": "v"})
    status, body = await billing.call("POST", "/v1/poison/redrive", json={"ids": ["p-1", "not-there"]})
    assert (status, body) == (200, {"ids": ["p-1"]})
    (again,) = await billing.receive(1)
    assert base64.b64decode(again["payload"]) == b"bad"
    assert await billing.call("GET", "/v1/poison") == (200, {"messages": []})


async def test_stats_give_the_same_figures_as_grpc(sidecars: Sidecars, rest: Rest) -> None:
    sidecar = sidecars("orders")["orders"]
    app = rest(sidecar)
    await app.send("billing", b"1", persistent=False)
    figures = await app.stats()
    grpc_app = App(sidecar)
    try:
        grpc_stats = await grpc_app.stub.Stats(pb.StatsRequest())
    finally:
        await grpc_app.close()
    assert figures["identity"] == grpc_stats.identity == "orders.default"
    assert figures["sent"] == grpc_stats.sent == 1
    assert figures["receiveQueue"] == grpc_stats.receive_queue == 0
    assert set(figures) == {
        "identity",
        "sendQueue",
        "receiveQueue",
        "inFlight",
        "sent",
        "delivered",
        "received",
        "acknowledged",
        "poisoned",
        "duplicates",
        "refused",
        "largeBytesUploaded",
        "largeBytesReceived",
        "largeBytesInProgress",
        "largeTransfersResumed",
    }


async def test_sending_the_same_id_twice_delivers_once(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    assert (await orders.send("billing", b"c", id="k-1"))[0] == 202
    assert (await orders.send("billing", b"c", id="k-1"))[0] == 202
    assert [m["id"] for m in await billing.receive(1)] == ["k-1"]
    assert await billing.call("GET", "/v1/messages", params={"wait": "0.5"}) == (200, {"messages": []})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"to": "", "payload": ""}, 'destination must be "<identity>" or "<identity>.<namespace>", got nothing'),
        ({"to": "Billing", "payload": ""}, "destination identity 'Billing' must be lower case"),
        ({"payload": ""}, '"to" is required'),
        ({"to": "billing"}, '"payload" is required'),
        ({"to": "billing", "payload": "not base64!"}, '"payload" is not standard base64'),
        ({"to": "billing", "payload": "", "persistent": "yes"}, '"persistent" must be true or false'),
        ({"to": "billing", "payload": "", "id": "has space"}, "message id must be 1 to 128 printable ASCII"),
        ({"to": "billing", "payload": "", "id": None}, "message id must be 1 to 128 printable ASCII"),
        ({"to": "billing", "payload": "", "headers": {"bad name": "v"}}, "header name 'bad name'"),
        ({"to": "billing", "payload": "", "headers": ["a"]}, '"headers" must be an object of strings'),
        ({"to": "billing", "payload": "", "colour": "red"}, "unknown field(s) 'colour'; allowed: to, payload"),
        (["not", "an", "object"], "the body must be a JSON object, got list"),
    ],
)
async def test_bad_json_sends_are_400_with_the_reason_and_nothing_is_sent(
    body: object, message: str, sidecars: Sidecars, rest: Rest
) -> None:
    app = rest(sidecars("orders")["orders"])
    status, answer = await app.call("POST", "/v1/messages", json=body)
    assert status == 400
    code, text = error_of(answer)
    assert code == "bad_request"
    assert message in text
    assert (await app.stats())["sent"] == 0


@pytest.mark.parametrize(
    ("request_kwargs", "message"),
    [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "the body is not valid JSON"),
        ({"data": b'{"to": NaN}', "headers": {"Content-Type": "application/json"}}, "NaN is not a JSON number"),
        ({"data": b"[" * 100_000, "headers": {"Content-Type": "application/json"}}, "not valid JSON"),
        ({"data": b"x", "headers": {"Content-Type": "text/plain"}}, "Content-Type must be application/json or"),
        ({"data": b"x", "headers": {"Content-Type": "application/octet-stream"}}, 'query parameter "to" is required'),
        (
            {
                "data": b"x",
                "params": {"to": "b", "persistent": "1"},
                "headers": {"Content-Type": "application/octet-stream"},
            },
            "persistent must be true or false, got '1'",
        ),
        (
            {
                "data": b"x",
                "params": {"to": "b", "colour": "red"},
                "headers": {"Content-Type": "application/octet-stream"},
            },
            "unknown query parameter(s) 'colour'; allowed: to, persistent, id",
        ),
        ({"json": {"to": "b", "payload": ""}, "params": {"to": "b"}}, "not from the query string"),
    ],
)
async def test_malformed_send_requests_are_400_with_the_reason(
    request_kwargs: dict[str, Any], message: str, sidecars: Sidecars, rest: Rest
) -> None:
    app = rest(sidecars("orders")["orders"])
    status, answer = await app.call("POST", "/v1/messages", **request_kwargs)
    assert (status, error_of(answer)[0]) == (400, "bad_request")
    assert message in error_of(answer)[1]
    assert (await app.stats())["sent"] == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max": "0"}, "max must be an integer from 1 to 1000, got '0'"),
        ({"max": "1001"}, "max must be an integer from 1 to 1000"),
        ({"max": "two"}, "max must be an integer from 1 to 1000"),
        ({"wait": "61"}, "wait must be a number of seconds from 0 to 60, got '61'"),
        ({"wait": "-1"}, "wait must be a number of seconds from 0 to 60"),
        ({"wait": "inf"}, "wait must be a number of seconds from 0 to 60"),
        ({"max": "1", "maxx": "2"}, "unknown query parameter(s) 'maxx'; allowed: max, wait"),
        ([("max", "1"), ("max", "2")], "a query parameter is given more than once"),
    ],
)
async def test_bad_receive_parameters_are_400_with_the_bounds(
    params: dict[str, str] | list[tuple[str, str]], message: str, sidecars: Sidecars, rest: Rest
) -> None:
    app = rest(sidecars("orders")["orders"])
    status, answer = await app.call("GET", "/v1/messages", params=params)
    assert (status, error_of(answer)[0]) == (400, "bad_request")
    assert message in error_of(answer)[1]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"requeue": "no"}, '"requeue" must be true or false'),
        ({"delay": -1}, '"delay" must be a number of seconds from 0 to 86400, got -1'),
        ({"delay": 10**400}, '"delay" must be a number of seconds from 0 to 86400'),
        ({"reason": 5}, '"reason" must be a string'),
        ({"why": "x"}, "unknown field(s) 'why'"),
    ],
)
async def test_bad_nacks_are_400_before_the_id_is_looked_up(
    body: Json, message: str, sidecars: Sidecars, rest: Rest
) -> None:
    app = rest(sidecars("orders")["orders"])
    status, answer = await app.call("POST", "/v1/messages/any/nack", json=body)
    assert (status, error_of(answer)[0]) == (400, "bad_request")
    assert message in error_of(answer)[1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ('{"to": "billing", "payload": ""}'.encode("utf-16"), "starts with a UTF-16 or UTF-32 byte-order mark"),
        ('{"to": "billing", "payload": ""}'.encode("utf-16-le"), "looks like UTF-16 or UTF-32"),
        ('{"to": "billing", "payload": ""}'.encode("utf-8-sig"), "starts with a UTF-8 byte-order mark"),
        (b'{"to": "nobody", "payload": "", "to": "billing"}', "the key 'to' appears more than once in one object"),
        (b'{"to": "billing", "payload": "", "headers": {"k": "\\udc00"}}', "half a surrogate pair"),
    ],
)
async def test_json_that_is_not_utf8_or_has_a_key_twice_is_400_and_nothing_is_sent(
    data: bytes, message: str, sidecars: Sidecars, rest: Rest
) -> None:
    app = rest(sidecars("orders")["orders"])
    status, answer = await app.call("POST", "/v1/messages", data=data, headers={"Content-Type": "application/json"})
    assert (status, error_of(answer)[0]) == (400, "bad_request")
    assert message in error_of(answer)[1]
    assert (await app.stats())["sent"] == 0


def _raw_exchange(port: int, data: bytes, *, half_close: bool) -> bytes:
    """Send ``data`` on a fresh connection, half-close it (or close it at once), read what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(data)
        if not half_close:
            return b""
        raw.shutdown(socket.SHUT_WR)
        got = b""
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := raw.recv(65536):
                got += chunk
        return got


async def test_a_body_cut_short_is_answered_400_or_closed_and_the_sidecar_logs_no_traceback(
    sidecars: Sidecars, rest: Rest
) -> None:
    sidecar = sidecars("orders")["orders"]
    app = rest(sidecar)
    cut = (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"to": "bi'
    )
    got = await asyncio.to_thread(_raw_exchange, sidecar.rest_port, cut, half_close=True)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    code, message = error_of(json.loads(body))
    assert code == "bad_request"
    assert "the request body broke off before its end" in message
    for _ in range(20):  # and clients that hang up at once, which cannot be answered
        await asyncio.to_thread(_raw_exchange, sidecar.rest_port, cut, half_close=False)
    assert (await app.stats())["sent"] == 0  # served after all of them
    log = sidecar.log()
    assert "Traceback" not in log
    assert "failed" not in log


async def test_idle_connections_beyond_the_health_ports_bound_do_not_shut_out_a_probe(sidecars: Sidecars) -> None:
    sidecar = sidecars("orders")["orders"]
    idle = [socket.create_connection(("127.0.0.1", sidecar.health_port)) for _ in range(100)]
    trickling = [socket.create_connection(("127.0.0.1", sidecar.health_port)) for _ in range(20)]
    try:
        for raw in trickling:
            raw.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head begun, never finished
        async with aiohttp.ClientSession() as session:
            for path in ("/healthz", "/readyz", "/metrics"):
                async with session.get(sidecar.health_url + path) as response:
                    assert response.status == 200
        idle[0].settimeout(5)
        assert idle[0].recv(1) == b""  # the longest waiting made room
    finally:
        for raw in idle + trickling:
            raw.close()


async def test_a_payload_over_the_limit_is_413_in_either_body_and_nothing_is_sent(
    sidecars: Sidecars, rest: Rest
) -> None:
    app = rest(sidecars("orders", GOQ_MAX_PAYLOAD_BYTES="2048")["orders"])
    status, answer = await app.send("billing", b"x" * 2049)
    assert (status, error_of(answer)) == (413, ("payload_too_large", "payload is 2049 bytes; the limit is 2048 bytes"))
    octets = {"Content-Type": "application/octet-stream"}
    status, answer = await app.call("POST", "/v1/messages", params={"to": "billing"}, data=b"x" * 2049, headers=octets)
    assert (status, error_of(answer)) == (
        413,
        ("payload_too_large", "the payload is 2049 bytes; at most 2048 are accepted"),
    )
    assert (await app.send("billing", b"x" * 2048))[0] == 202
    assert (await app.stats())["sent"] == 1


async def test_a_huge_body_is_refused_before_it_is_read(sidecars: Sidecars, rest: Rest) -> None:
    spec = '{"maxMessageSize": 1024}'
    app = rest(sidecars("orders", GOQ_MAX_PAYLOAD_BYTES="1024", GOQ_QUEUE_SPEC=spec)["orders"])

    # Chunked, so no Content-Length to judge by: it streams as a large message, cut off at the limit.
    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):
            yield b"x" * 65536

    octets = {"Content-Type": "application/octet-stream"}
    status, answer = await app.call("POST", "/v1/messages", params={"to": "billing"}, data=endless(), headers=octets)
    assert (status, error_of(answer)) == (
        413,
        (
            "payload_too_large",
            "payload is over 1024 bytes; the limit is 1024 bytes (the GoQueue's maxMessageSize, at most "
            "4294967296); nothing was stored",
        ),
    )
    huge = {"Content-Type": "application/json", "Content-Length": str(10**12)}
    status, answer = await app.call("POST", "/v1/messages", data=b"{}", headers=huge)
    assert (status, error_of(answer)[0]) == (413, "payload_too_large")
    assert "the JSON body is 1000000000000 bytes; at most" in error_of(answer)[1]


async def test_a_full_send_queue_with_overflow_reject_is_429(sidecars: Sidecars, rest: Rest) -> None:
    spec = '{"sendQueueLimit": 1, "overflow": "reject"}'
    app = rest(sidecars("orders", GOQ_QUEUE_SPEC=spec)["orders"])  # "billing" is never started: nothing drains
    assert (await app.send("billing", b"1"))[0] == 202
    status, answer = await app.send("billing", b"2")
    assert (status, error_of(answer)) == (429, ("queue_full", "send queue full (sendQueueLimit 1); retry later"))
    assert (await app.stats())["sent"] == 1


async def test_a_full_send_queue_with_overflow_poison_answers_poisoned(sidecars: Sidecars, rest: Rest) -> None:
    app = rest(sidecars("orders", GOQ_QUEUE_SPEC='{"sendQueueLimit": 1}')["orders"])
    assert (await app.send("billing", b"1"))[1]["state"] == "queued"
    status, receipt = await app.send("billing", b"2", id="over")
    assert (status, receipt) == (202, {"id": "over", "state": "poisoned"})
    status, body = await app.call("GET", "/v1/poison")
    assert [(m["id"], m["reason"]) for m in body["messages"]] == [("over", "overflow")]


async def test_persistent_sends_without_mongodb_are_503_and_transient_ones_go(sidecars: Sidecars, rest: Rest) -> None:
    app = rest(sidecars("orders", GOQ_MONGODB_URI="", GOQ_QUEUE_SPEC='{"poisonQueue": {"type": "log"}}')["orders"])
    status, answer = await app.send("billing", b"x")
    assert (status, error_of(answer)[0]) == (503, "unavailable")
    assert "persistent messages need MongoDB" in error_of(answer)[1]
    assert (await app.stats())["sent"] == 0
    assert (await app.send("billing", b"x", persistent=False))[0] == 202
    status, answer = await app.call("GET", "/v1/poison")
    assert (status, error_of(answer)[0]) == (400, "bad_request")
    assert "keeps nothing to list or redrive" in error_of(answer)[1]


async def test_unknown_paths_and_methods_answer_json_errors(sidecars: Sidecars, rest: Rest) -> None:
    app = rest(sidecars("orders")["orders"])
    status, answer = await app.call("GET", "/v2/nothing")
    assert (status, error_of(answer)[0]) == (404, "not_found")
    status, answer = await app.call("DELETE", "/v1/messages")
    assert (status, error_of(answer)[0]) == (405, "method_not_allowed")
    assert "allowed: GET, POST" in error_of(answer)[1]


async def test_the_openapi_document_lists_every_route(sidecars: Sidecars, rest: Rest) -> None:
    app = rest(sidecars("orders")["orders"])
    status, document = await app.call("GET", "/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.")
    assert {(p, m) for p, item in document["paths"].items() for m in item} == {
        ("/v1/messages", "post"),
        ("/v1/messages", "get"),
        ("/v1/messages/ack", "post"),
        ("/v1/messages/{id}/ack", "post"),
        ("/v1/messages/{id}/nack", "post"),
        ("/v1/messages/{id}/payload", "get"),
        ("/v1/stats", "get"),
        ("/v1/poison", "get"),
        ("/v1/poison/redrive", "post"),
        ("/openapi.json", "get"),
    }


async def test_ids_with_reserved_characters_are_acknowledged_through_a_percent_encoded_path(
    sidecars: Sidecars, rest: Rest
) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    odd = "order/42?x#y%z"
    assert (await orders.send("billing", b"x", id=odd))[1] == {"id": odd, "state": "queued"}
    (message,) = await billing.receive(1)
    assert message["id"] == odd
    path = yarl.URL.build(path=f"/v1/messages/{quote(odd, safe='')}/ack", encoded=True)
    async with billing.session.post(yarl.URL(billing.url).join(path)) as response:
        assert response.status == 204
    assert (await billing.stats())["acknowledged"] == 1


async def test_a_waiting_long_poll_does_not_hold_up_shutdown(sidecars: Sidecars, rest: Rest) -> None:
    sidecar = sidecars("orders")["orders"]
    app = rest(sidecar)
    poll = asyncio.create_task(app.call("GET", "/v1/messages", params={"wait": "60"}))
    with pytest.raises(TimeoutError):  # it is really waiting
        await asyncio.wait_for(asyncio.shield(poll), 0.5)
    started = asyncio.get_running_loop().time()
    await asyncio.to_thread(sidecar.stop)
    assert asyncio.get_running_loop().time() - started < 5
    with contextlib.suppress(aiohttp.ClientError):
        assert await poll == (200, {"messages": []})


async def waiting(app: RestApp, count: int, within: float = 20.0) -> None:
    """Until ``count`` messages wait in the receive queue of ``app``'s sidecar (another process: polled)."""
    async with asyncio.timeout(within):
        while True:
            if (await app.stats())["receiveQueue"] >= count:
                return
            await asyncio.sleep(0.05)


async def test_one_receive_hands_out_everything_waiting_up_to_max(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing")
    orders, billing = rest(group["orders"]), rest(group["billing"])
    for n in range(6):
        await orders.send("billing", b"%d" % n, persistent=False)
    await waiting(billing, 6)
    status, body = await billing.call("GET", "/v1/messages", params={"max": "10"})
    assert (status, sorted(base64.b64decode(m["payload"]) for m in body["messages"])) == (
        200,
        [b"0", b"1", b"2", b"3", b"4", b"5"],
    )


async def test_one_receive_answers_with_at_most_16_mib_of_payload(sidecars: Sidecars, rest: Rest) -> None:
    group = sidecars("orders", "billing", GOQ_MAX_PAYLOAD_BYTES=str(16 * 1024 * 1024))
    orders, billing = rest(group["orders"]), rest(group["billing"])
    octets, to = {"Content-Type": "application/octet-stream"}, {"to": "billing", "persistent": "false"}
    for n in range(2):
        big = io.BytesIO(bytes([n]) * 1024 * 1024)
        assert (await orders.call("POST", "/v1/messages", params=to, data=big, headers=octets))[0] == 202
    await waiting(billing, 2)
    # Two 1 MiB payloads would fit, but the second could have been 16 MiB: one per answer.
    for _ in range(2):
        status, body = await billing.call("GET", "/v1/messages", params={"max": "10"})
        assert (status, len(body["messages"])) == (200, 1)
        assert len(base64.b64decode(body["messages"][0]["payload"])) == 1024 * 1024
