"""The admission server on its own thread and loop: nothing the operator's loop does can delay an answer.

Why: on the operator's main loop, kopf's start during a leadership takeover kept reviews waiting past the API
server's timeout ("context deadline exceeded"), and ``failurePolicy: Ignore`` let those pods run without their
sidecar. Real HTTPS over loopback, a real certificate; only the mutator is a stand-in.
"""

import asyncio
import datetime
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from goq.devenv.ports import free_port
from goq.operator import certificates, registration
from goq.operator.admission import LIVE_PATH, MUTATE_PATH, READY_PATH, AdmissionServer
from goq.operator.admission_thread import AdmissionThread

NOW = datetime.datetime.now(datetime.UTC)
REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {"uid": "u1", "namespace": "shop", "object": {"metadata": {"name": "p"}, "spec": {}}},
}


def _patch(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"op": "add", "path": "/metadata/labels", "value": {"goq.io/id": "orders"}}]


def _valid(obj: Mapping[str, Any]) -> None:
    return None


def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def request(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=_insecure())
    try:
        payload = None if body is None else json.dumps(body)
        connection.request(method, path, payload, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def served_der(port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        _insecure().wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der_of(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


@pytest.fixture
def running() -> Iterator[tuple[AdmissionThread, int]]:
    server = AdmissionServer(_patch, _valid)
    registration.load_into(server, certificates.issue(("127.0.0.1",), NOW))
    admission, port = AdmissionThread(server), free_port()
    admission.start("127.0.0.1", port)
    try:
        yield admission, port
    finally:
        admission.stop()


def test_reviews_are_answered_at_once_while_the_operators_own_loop_is_blocked(
    running: tuple[AdmissionThread, int],
) -> None:
    _, port = running
    latencies: list[float] = []
    answers: list[Any] = []

    def review_during_the_block() -> None:
        time.sleep(0.3)  # the operator's loop is blocked by then
        started = time.monotonic()
        answers.append(request(port, "POST", MUTATE_PATH, REVIEW))
        latencies.append(time.monotonic() - started)

    async def kopf_starting_up() -> None:  # what blocked the loop: synchronous work for seconds
        client = threading.Thread(target=review_during_the_block)
        client.start()
        time.sleep(3.0)  # noqa: ASYNC251 (the point: a loop blocked as kopf's start blocked it)
        await asyncio.to_thread(client.join, 10)

    blocked = time.monotonic()
    asyncio.run(kopf_starting_up())
    assert time.monotonic() - blocked >= 3.0
    [(status, answer)] = answers
    assert (status, answer["response"]["uid"], answer["response"]["allowed"]) == (200, "u1", True)
    assert latencies[0] < 1.5, f"the review waited {latencies[0]:.2f} s for the operator's loop"


def test_ready_while_answering_not_ready_while_draining_and_gone_once_stopped(
    running: tuple[AdmissionThread, int],
) -> None:
    admission, port = running
    assert request(port, "GET", READY_PATH)[0] == 200
    admission.drain()
    status, body = request(port, "GET", READY_PATH)
    assert (status, body["status"]) == (503, "draining")
    assert request(port, "GET", LIVE_PATH)[0] == 200, "a draining replica is alive"
    assert request(port, "POST", MUTATE_PATH, REVIEW)[1]["response"]["allowed"] is True, "drained, still answers"
    admission.stop()
    assert not admission.alive
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_certificate_loaded_from_the_operators_thread_is_served_from_the_next_handshake(
    running: tuple[AdmissionThread, int],
) -> None:
    admission, port = running
    before = served_der(port)
    renewed = certificates.issue(("127.0.0.1",), NOW)
    registration.load_into(admission.server, renewed)  # from this thread, as the operator's loop does
    assert served_der(port) == der_of(renewed.cert) != before
    assert request(port, "POST", MUTATE_PATH, REVIEW)[0] == 200


def test_a_port_already_taken_fails_the_start_with_the_bind_error() -> None:
    server = AdmissionServer(_patch, _valid)
    registration.load_into(server, certificates.issue(("127.0.0.1",), NOW))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        admission = AdmissionThread(server)
        with pytest.raises(OSError, match="address already in use"):
            admission.start("127.0.0.1", taken.getsockname()[1])
    assert not admission.alive
