"""After a known scenario, /metrics of both sidecars says exactly what happened."""

import asyncio
import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


def scrape(sidecar: SidecarProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{sidecar.health_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_after_twenty_delivered_and_three_poisoned(sidecars: Sidecars, apps: Apps) -> None:
    policy = json.dumps({"maxAttempts": 1})
    group = sidecars("orders", "billing", GOQ_RETRY_POLICY=policy)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", [b"x"] * 20)
    await orders.send("nowhere", [b"y"] * 3)  # no such peer: poisoned after its one attempt
    assert len(await billing.receive(20, within=60)) == 20
    for _ in range(600):
        if (await orders.stats()).poisoned == 3 and (await billing.stats()).acknowledged == 20:
            break
        await asyncio.sleep(0.05)

    sent = scrape(group["orders"])
    me = (("identity", "orders.default"),)
    assert sent[("goq_messages_sent_total", me)] == 23
    assert sent[("goq_messages_delivered_total", me)] == 20
    assert sent[("goq_messages_poisoned_total", (("identity", "orders.default"), ("reason", "max-attempts")))] == 3
    assert sent[("goq_send_queue_messages", me)] == 0
    assert sent[("goq_delivery_attempts_count", me)] == 20
    assert sent[("goq_delivery_attempts_bucket", (("identity", "orders.default"), ("le", "1.0")))] == 20

    received = scrape(group["billing"])
    them = (("identity", "billing.default"),)
    assert received[("goq_messages_received_total", them)] == 20
    assert received[("goq_messages_acknowledged_total", them)] == 20
    assert received[("goq_receive_queue_messages", them)] == 0
    assert received[("goq_delivery_latency_seconds_count", them)] == 20
    assert received[("goq_delivery_latency_seconds_bucket", (("identity", "billing.default"), ("le", "+Inf")))] == 20


DASHBOARD = Path(__file__).resolve().parents[2] / "manifests" / "grafana" / "goq-dashboard.json"


def declared(sidecar: SidecarProcess) -> set[str]:
    """Metric families a sidecar declares (``# TYPE`` lines), even those with no sample yet."""
    with urllib.request.urlopen(f"{sidecar.health_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {family(line.split()[2]) for line in text.splitlines() if line.startswith("# TYPE ")}


def family(name: str) -> str:
    """A metric's family name, whichever sample or TYPE spelling it comes in."""
    return re.sub(r"_(total|bucket|count|sum|created)$", "", name)


def queried_families() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names = {n for p in dashboard["panels"] for t in p["targets"] for n in re.findall(r"goq_\w+", t["expr"])}
    return {family(n) for n in names}


def test_every_metric_the_grafana_dashboard_queries_is_declared(sidecars: Sidecars) -> None:
    orders = sidecars("orders")["orders"]
    queried = queried_families()
    assert len(queried) >= 10, "the dashboard queries almost nothing"
    assert queried <= declared(orders), (
        f"the dashboard queries undeclared metrics: {sorted(queried - declared(orders))}"
    )
