"""A redriven outbound message is signed again with the sender's active key: one poisoned because the
receiver no longer knows the key it was signed with is delivered once the sender signs with a known one."""

import asyncio
import json
from collections.abc import Callable

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess, hmac_keys

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]

RETIRED, CURRENT = b"r" * 32, b"c" * 32
SHORT = json.dumps({"maxAttempts": 3, "initialBackoff": "50ms", "maxBackoff": "50ms"})
"""An unknown key is retried (it may be a new key not known there yet): poisoned after a few attempts."""


async def test_a_message_poisoned_for_a_retired_key_is_delivered_when_redriven_after_the_sender_rotates(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=SHORT)
    group["orders"].env.update(
        GOQ_HMAC_KEYS=hmac_keys({"retired": RETIRED, "current": CURRENT}), GOQ_HMAC_ACTIVE="retired"
    )
    group["billing"].env.update(GOQ_HMAC_KEYS=hmac_keys({"current": CURRENT}))  # "retired" is gone here
    for sidecar in group.values():
        sidecar.start()
    orders = apps(group["orders"])
    (result,) = await orders.send("billing", [b"signed with a retired key"])
    for _ in range(600):
        listed = (await orders.stub.ListPoisoned(pb.ListPoisonedRequest())).messages
        if listed:
            break
        await asyncio.sleep(0.05)
    assert [(m.id, m.reason) for m in listed] == [(result.accepted.id, "max-attempts")]
    assert "unknown key 'retired'" in listed[0].detail

    group["orders"].env["GOQ_HMAC_ACTIVE"] = "current"  # the sender's keys rotated
    await asyncio.to_thread(group["orders"].stop)
    await asyncio.to_thread(group["orders"].start)
    orders = apps(group["orders"])
    redriven = await orders.stub.Redrive(pb.RedriveRequest(ids=[result.accepted.id]))
    assert list(redriven.ids) == [result.accepted.id]
    got = await apps(group["billing"]).receive(1, within=30)
    assert [(m.id, m.payload) for m in got] == [(result.accepted.id, b"signed with a retired key")]
    assert list((await orders.stub.ListPoisoned(pb.ListPoisonedRequest())).messages) == []
