"""A stopping operator replica drains its webhook: it answers, but closes each connection after the answer.

Why: the API server keeps a connection to a replica alive; a review sent on it while the replica stops ends
in EOF, and with ``failurePolicy: Ignore`` a pod created then runs without its sidecar
(``tests/e2e/test_operator_rollout.py`` saw it once in 16 pods).
"""

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from goq.errors import ConfigError
from goq.operator.admission import AdmissionServer
from goq.operator.settings import OperatorSettings


def _untouched(pod: Any, namespace: str) -> list[dict[str, Any]]:
    return []


def _valid(obj: Any) -> None:
    return None


REVIEW = {
    "apiVersion": "admission.k8s.io/v1",
    "kind": "AdmissionReview",
    "request": {"uid": "u1", "namespace": "shop", "object": {"metadata": {"name": "p"}, "spec": {}}},
}


async def test_a_draining_server_still_answers_reviews_but_closes_each_connection_after_the_answer() -> None:
    server = AdmissionServer(_untouched, _valid)
    async with TestClient(TestServer(server.app())) as client:
        before = await client.post("/mutate-pods", json=REVIEW)
        assert before.status == 200
        assert before.headers.get("Connection", "").lower() != "close"

        server.drain()
        during = await client.post("/mutate-pods", json=REVIEW)
        assert during.status == 200
        assert (await during.json())["response"]["uid"] == "u1"
        assert during.headers.get("Connection", "").lower() == "close"


async def test_a_draining_server_says_it_is_not_ready() -> None:
    server = AdmissionServer(_untouched, _valid)
    async with TestClient(TestServer(server.app())) as client:
        assert (await client.get("/healthz")).status == 200
        server.drain()
        health = await client.get("/healthz")
        assert (health.status, (await health.json())["status"]) == (503, "draining")


def test_the_drain_defaults_to_fifteen_seconds_and_is_bounded_by_the_grace_period() -> None:
    assert OperatorSettings.from_env({}).webhook.drain == 15.0
    assert OperatorSettings.from_env({"GOQ_WEBHOOK_DRAIN": "0s"}).webhook.drain == 0.0
    with pytest.raises(ConfigError, match=r"GOQ_WEBHOOK_DRAIN must be from 0s to 25s .*got 45s"):
        OperatorSettings.from_env({"GOQ_WEBHOOK_DRAIN": "45s"})
