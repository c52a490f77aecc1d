"""The operator's /metrics (on the admission server): its process and Python series and the admission answers."""

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from goq.errors import ConfigError
from goq.operator.admission import METRICS_PATH, MUTATE_PATH, AdmissionServer
from goq.operator.leadership import LeaderStatus
from goq.operator.metrics import LeaderCollector, operator_registry


def mutator(pod: Any) -> list[dict[str, Any]]:
    if pod["metadata"].get("name") == "bad":
        raise ConfigError("bad pod")
    return [{"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    server = AdmissionServer(mutator, lambda obj: None)
    async with TestClient(TestServer(server.app())) as test_client:
        yield test_client


async def scrape(client: TestClient[Any, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get(METRICS_PATH)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await response.text())
        for s in family.samples
    }


async def test_the_operator_exposes_its_memory_cpu_and_garbage_collection(client: TestClient[Any, Any]) -> None:
    samples = await scrape(client)
    assert samples[("process_resident_memory_bytes", ())] > 0
    assert ("process_cpu_seconds_total", ()) in samples
    assert ("python_gc_collections_total", (("generation", "2"),)) in samples
    assert any(name == "python_info" for name, _ in samples)


async def test_the_admission_answers_are_counted_by_outcome(client: TestClient[Any, Any]) -> None:
    for name in ("ok", "ok", "bad"):
        review = {"request": {"uid": name, "object": {"metadata": {"name": name}}}}
        await client.post(MUTATE_PATH, json=review)
    samples = await scrape(client)
    assert samples[("goq_admission_reviews_total", (("outcome", "injected"),))] == 2
    assert samples[("goq_admission_reviews_total", (("outcome", "refused"),))] == 1


def test_the_leader_gauge_and_its_changes_follow_the_replicas_leader_status() -> None:
    status = LeaderStatus()
    registry = operator_registry(Counter())
    registry.register(LeaderCollector(status))

    def sample(name: str, labels: dict[str, str] | None = None) -> float | None:
        return registry.get_sample_value(name, labels or {})

    assert (sample("goq_operator_leader"), sample("goq_operator_leader_changes_total", {"change": "gained"})) == (0, 0)
    status.leading, status.changes["gained"] = True, 1
    assert sample("goq_operator_leader") == 1
    status.leading, status.changes["lost"] = False, 1
    assert sample("goq_operator_leader") == 0
    assert sample("goq_operator_leader_changes_total", {"change": "lost"}) == 1
