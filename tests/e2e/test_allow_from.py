"""``allowFrom`` end to end on the local cluster: billing's GoQueue lets only orders send. Orders' messages
arrive; those of audit (the same program, another identity) are poisoned at audit's sidecar with reason
``forbidden`` and never reach billing; once the GoQueue also allows audit, the running sidecar follows the
change and audit's redriven messages arrive."""

import asyncio
import json
from typing import Any

from kubernetes_asyncio import client as k8s

from goq import names
from goq.devenv import applying
from goq.devenv.demo import ACCEPTED, INVOICED, goqctl

from .conftest import ShopSpace, eventually

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}


def billing_queue(*senders: str, namespace: str) -> dict[str, Any]:
    allow = [{"namespace": namespace, "identity": s} for s in senders]
    spec = {"retryPolicy": "e2e", "poisonQueue": {"type": "mongodb"}, "allowFrom": allow}
    return {"apiVersion": names.API_VERSION, "kind": "GoQueue", "metadata": {"name": "billing"}, "spec": spec}


async def orders_program_as(space: ShopSpace, identity: str, env: dict[str, str]) -> None:
    """A pod of identity ``identity`` running the shop's orders program (it sends to billing)."""
    container = {
        "name": "app",
        "image": "goq/goq-example-orders:test",
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": identity, "labels": {"app": identity}, "annotations": {names.ANNOTATION_ID: identity}},
        "spec": {"containers": [container]},
    }
    await k8s.CoreV1Api(space.api).create_namespaced_pod(space.name, body)


async def poison_list(sidecar: str) -> list[dict[str, Any]]:
    listed = await asyncio.to_thread(goqctl, "--sidecar", sidecar, "-o", "json", "poison", "list")
    assert listed.returncode == 0, listed.stderr
    entries: list[dict[str, Any]] = json.loads(listed.stdout)
    return entries


async def test_only_allowed_senders_reach_billing_and_a_changed_allow_from_applies_without_restart(
    space: ShopSpace,
) -> None:
    await space.queues(PATIENT, "orders", "audit")
    await applying.apply(space.api, billing_queue("orders", namespace=space.name), space.name)
    await space.pod("billing")
    await space.pod("orders", {"ORDERS_COUNT": "3", "ORDERS_INTERVAL": "0"})
    await orders_program_as(space, "audit", {"ORDERS_COUNT": "3", "ORDERS_INTERVAL": "0", "ORDERS_START": "101"})
    billing, orders, audit = [await space.running(app) for app in ("billing", "orders", "audit")]
    audit_sidecar = space.sidecar_address(audit)

    async def forbidden_poisoned() -> list[dict[str, Any]]:
        entries = await poison_list(audit_sidecar)
        return entries if len(entries) >= 3 else []

    entries = await eventually(forbidden_poisoned, 30)
    # Attempts that failed before billing's pod could be reached may come first (its address appears when it is
    # ready); once billing answers, the refusal poisons at once (tests/integration/test_allow_from.py counts it).
    assert sorted((e["reason"], e["peer"]) for e in entries) == [("forbidden", f"billing.{space.name}")] * 3
    assert all(f"audit.{space.name} may not send to billing.{space.name}" in str(e["detail"]) for e in entries)
    assert space.shop.numbers(audit, ACCEPTED) == {101, 102, 103}

    async def orders_invoiced() -> bool:
        return space.shop.numbers(billing, INVOICED) >= {1, 2, 3}

    assert await eventually(orders_invoiced, 30), space.shop.log(billing).read_text()[-2000:]
    assert space.shop.numbers(billing, INVOICED) == {1, 2, 3}
    assert await poison_list(space.sidecar_address(orders)) == []

    # billing's running sidecar follows its GoQueue: allow audit too, then hand its messages back.
    await applying.apply(space.api, billing_queue("orders", "audit", namespace=space.name), space.name)

    async def redriven_and_invoiced() -> bool:
        left = [e["id"] for e in await poison_list(audit_sidecar)]
        if left:
            await asyncio.to_thread(goqctl, "--sidecar", audit_sidecar, "poison", "redrive", *left)
        return space.shop.numbers(billing, INVOICED) == {1, 2, 3, 101, 102, 103}

    assert await eventually(redriven_and_invoiced, 30, interval=1.0), space.shop.log(billing).read_text()[-2000:]
    assert space.restarts(await space.shop.pod("billing")) == 0
