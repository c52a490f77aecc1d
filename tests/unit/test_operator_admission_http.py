"""The admission server's HTTP layer: AdmissionReviews in, answers out; junk gets a 400, not a crash."""

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from goq.errors import ConfigError
from goq.operator.admission import HEALTH_PATH, MUTATE_PATH, VALIDATE_PATH, AdmissionServer


def mutator(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    if pod["metadata"].get("name") == "bad":
        raise ConfigError("bad pod")
    return [{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]


def validator(obj: Mapping[str, Any]) -> None:
    if obj.get("spec") == {"broken": True}:
        raise ConfigError("spec is broken")


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    server = AdmissionServer(mutator, validator)
    async with TestClient(TestServer(server.app())) as test_client:
        yield test_client


def review(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "1", "object": obj}}


async def test_a_pod_review_is_answered_with_a_patch_or_a_refusal(client: TestClient[Any, Any]) -> None:
    allowed = await (await client.post(MUTATE_PATH, json=review({"metadata": {"name": "ok"}}))).json()
    assert allowed["response"]["allowed"] is True
    assert allowed["response"]["patchType"] == "JSONPatch"
    refused = await (await client.post(MUTATE_PATH, json=review({"metadata": {"name": "bad"}}))).json()
    assert refused["response"]["allowed"] is False
    assert refused["response"]["status"]["message"] == "bad pod"


async def test_a_custom_object_review_is_validated(client: TestClient[Any, Any]) -> None:
    refused = await (await client.post(VALIDATE_PATH, json=review({"spec": {"broken": True}}))).json()
    assert refused["response"]["status"]["message"] == "spec is broken"
    allowed = await (await client.post(VALIDATE_PATH, json=review({"spec": {}}))).json()
    assert allowed["response"]["allowed"] is True


@pytest.mark.parametrize("path", [MUTATE_PATH, VALIDATE_PATH])
@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
async def test_junk_is_a_bad_request(client: TestClient[Any, Any], path: str, body: bytes) -> None:
    response = await client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400


async def test_health_counts_the_outcomes(client: TestClient[Any, Any]) -> None:
    await client.post(MUTATE_PATH, json=review({"metadata": {"name": "ok"}}))
    health = await (await client.get(HEALTH_PATH)).json()
    assert health == {"status": "ok", "outcomes": {"injected": 1}}
