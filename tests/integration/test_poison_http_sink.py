"""A poison sink that fails does not lose the message: the sidecar keeps it and hands it over later."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from goq.devenv.ports import free_port
from goq.devenv.sidecars import SidecarProcess

from .conftest import App
from .test_metrics import scrape

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]


async def test_a_message_poisoned_while_the_endpoint_is_down_reaches_it_once_it_is_up(
    sidecars: Sidecars, apps: Apps
) -> None:
    port = free_port()
    spec = {"poisonQueue": {"type": "http", "url": f"http://127.0.0.1:{port}/poison", "retries": 0, "timeout": 1}}
    policy = {"maxAttempts": 1}
    orders = sidecars("orders", GOQ_QUEUE_SPEC=json.dumps(spec), GOQ_RETRY_POLICY=json.dumps(policy))["orders"]
    app = apps(orders)
    (result,) = await app.send("nowhere", [b"keep me"])
    await asyncio.sleep(2)  # the endpoint is down: poisoning fails and is retried
    stats = await app.stats()
    assert (stats.send_queue, stats.poisoned) == (1, 0), "the message was dropped when its poison sink failed"
    assert "poison sink failed for 1 message(s), keeping them to retry" in orders.log()
    failures = scrape(orders)[("goq_poison_sink_failures_total", (("identity", "orders.default"),))]
    assert failures >= 1, "the sink's failure is not visible in the metrics"

    received: list[dict[str, Any]] = []

    async def poison(request: web.Request) -> web.Response:
        received.extend((await request.json())["messages"])
        return web.Response(status=204)

    server = web.Application()
    server.router.add_post("/poison", poison)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        for _ in range(300):
            if received:
                break
            await asyncio.sleep(0.05)
        assert [(m["id"], m["reason"]) for m in received] == [(result.accepted.id, "max-attempts")]
        for _ in range(100):
            if (await app.stats()).send_queue == 0:
                break
            await asyncio.sleep(0.05)
        assert (await app.stats()).poisoned == 1
    finally:
        await runner.cleanup()
