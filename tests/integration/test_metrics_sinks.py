"""Metrics sinks get the sidecar's figures on the GoQueue's interval; a failing sink is counted and recovers."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from pymongo import AsyncMongoClient

from goq.devenv.errors import DevEnvError
from goq.devenv.ports import free_port
from goq.devenv.sidecars import SidecarProcess

from .conftest import App
from .test_metrics import scrape

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


def spec(*sinks: dict[str, str]) -> str:
    return json.dumps({"metrics": {"interval": "1s", "sinks": list(sinks)}})


async def test_log_and_mongodb_sinks_receive_the_figures(
    sidecars: Sidecars, apps: Apps, mongo_uri: str, database: str
) -> None:
    orders = sidecars("orders", GOQ_QUEUE_SPEC=spec({"type": "log"}, {"type": "mongodb"}))["orders"]
    await apps(orders).send("nowhere", [b"x"] * 5)
    async with AsyncMongoClient[dict[str, object]](mongo_uri) as client:
        for _ in range(100):
            doc = await client[database]["metrics"].find_one({"identity": "orders.default", "sent": 5})
            if doc:
                break
            await asyncio.sleep(0.1)
    assert doc is not None, "no metrics document with the five sends"
    assert doc["send_queue"] == 5
    lines = [json.loads(line) for line in orders.log().splitlines() if '"event": "metrics"' in line]
    assert any(line["sent"] == 5 and line["identity"] == "orders.default" for line in lines)


@pytest.fixture
async def pushgateway() -> AsyncIterator[tuple[int, list[str], Callable[[], object], Callable[[], object]]]:
    """A Pushgateway-compatible endpoint on loopback that records what is pushed; it can stop and come back."""
    pushed: list[str] = []
    port = free_port()

    async def accept(request: web.Request) -> web.Response:
        pushed.append(request.path + "\n" + await request.text())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_route("*", "/metrics/{tail:.*}", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    sites = [web.TCPSite(runner, "127.0.0.1", port)]
    await sites[0].start()

    async def stop() -> None:
        await sites[-1].stop()

    async def restart() -> None:
        sites.append(web.TCPSite(runner, "127.0.0.1", port))
        await sites[-1].start()

    yield port, pushed, stop, restart
    await runner.cleanup()


async def test_pushgateway_sink_pushes_and_counts_failures_until_the_gateway_is_back(
    sidecars: Sidecars, apps: Apps, pushgateway: tuple[int, list[str], Callable[[], object], Callable[[], object]]
) -> None:
    port, pushed, stop_gateway, restart_gateway = pushgateway
    orders = sidecars("orders", GOQ_QUEUE_SPEC=spec({"type": "pushgateway", "url": f"http://127.0.0.1:{port}"}))[
        "orders"
    ]
    await apps(orders).send("nowhere", [b"x"] * 2)
    for _ in range(100):
        if any("goq_messages_sent_total" in p and "2.0" in p for p in pushed):
            break
        await asyncio.sleep(0.1)
    assert pushed[-1].startswith("/metrics/job/goq/identity/orders.default")
    assert 'goq_messages_sent_total{identity="orders.default"} 2.0' in pushed[-1]

    await stop_gateway()  # type: ignore[misc]
    failures = ("goq_metrics_sink_failures_total", (("sink", "pushgateway"),))
    for _ in range(100):
        if scrape(orders).get(failures, 0) >= 1:
            break
        await asyncio.sleep(0.1)
    assert scrape(orders)[failures] >= 1
    assert "metrics sink pushgateway failed" in orders.log()

    pushed.clear()
    await restart_gateway()  # type: ignore[misc]
    for _ in range(100):
        if pushed:
            break
        await asyncio.sleep(0.1)
    assert pushed, "no push after the gateway came back"
    assert "goq_metrics_sink_failures_total" in pushed[-1]


def test_a_metrics_sink_that_is_not_installed_stops_the_start_with_its_name(sidecars: Sidecars) -> None:
    with pytest.raises(DevEnvError, match="metrics sink 'statsd' is not installed; available: log, mongodb"):
        sidecars("orders", GOQ_QUEUE_SPEC=spec({"type": "statsd"}))
