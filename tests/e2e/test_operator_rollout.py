"""An operator rollout while a Deployment of an identity scales up: every new pod gets its sidecar.

The pod webhook's ``failurePolicy`` is ``Ignore`` (a cluster must not stop creating pods when GoQ is down),
so a pod created while no operator replica answers runs without its sidecar. Two replicas behind the Service
``goq-webhook`` are what prevents it: here one operator pod is deleted, and once the Deployment has brought
a replacement up, the other, while billing's Deployment adds a pod every few seconds throughout.
"""

import asyncio
import datetime
import json
from typing import Any

import pytest

from goq import names
from goq.devenv import applying
from goq.devenv.node import dockerfiles
from goq.devenv.node.cluster import OPERATOR_NAMESPACE
from goq.webhook.settings import CONTAINER_NAME

from .conftest import ShopSpace, eventually, ready
from .test_install import operator_pods

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}
MOST = 16
"""Billing's replicas at most: one more every ``STEP`` s while the operator pods are replaced."""
STEP = 2.5
LEAST = 6
"""Pods created during the rollout, at least: else the rollout was over too soon to show anything."""


def deployment(replicas: int) -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"app": "billing"}, "annotations": {names.ANNOTATION_ID: "billing"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": f"goq.local/goq-example-billing:{dockerfiles.TAG}",
                    "imagePullPolicy": "Never",
                }
            ],
            "terminationGracePeriodSeconds": 5,
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "billing"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "billing"}}, "template": template},
    }


@pytest.mark.xfail(
    strict=False,
    reason=(
        "issue 22, open: on this busy 2-core test node a review still fails now and then during the rollout "
        "(1 of 35 pods uninjected over 3 runs before GOQ_WEBHOOK_DRAIN, 3 of 21 over 2 runs after it): EOF from a "
        "deleted replica kube-proxy still routed to 7 s after its deletion (what the 15 s drain covers), and "
        "'context deadline exceeded' while the one replica left takes the leadership over, likely because its "
        "admission server shares the event loop with kopf's start. Next: the admission server on a thread and "
        "loop of its own; failurePolicy Fail with an objectSelector for pods that ask for GoQ"
    ),
)
async def test_pods_created_while_each_operator_replica_is_replaced_in_turn_are_all_injected(space: ShopSpace) -> None:
    kubectl = space.cluster.kubectl
    await space.queues(PATIENT, "billing")
    await applying.apply(space.api, deployment(1), space.name)
    await asyncio.to_thread(kubectl, "-n", space.name, "rollout", "status", "deploy/billing", "--timeout=180s")
    replicas = 1
    replaced = asyncio.Event()
    timeline: list[str] = []  # for a failure's message: when each operator pod went and came back

    def note(what: str) -> None:
        timeline.append(f"{datetime.datetime.now(datetime.UTC):%H:%M:%S.%f} {what}")

    async def scale_up() -> None:
        nonlocal replicas
        while replicas < MOST and not replaced.is_set():
            await asyncio.sleep(STEP)
            replicas += 1
            await asyncio.to_thread(kubectl, "-n", space.name, "scale", "deploy/billing", f"--replicas={replicas}")

    def live_operators() -> list[dict[str, Any]]:
        return [p for p in operator_pods(space.cluster) if not p["metadata"].get("deletionTimestamp")]

    async def replace(old: dict[str, Any], others: set[str]) -> None:
        """Delete ``old`` and wait until two Ready operator pods run again, one of them new."""
        note(f"deleting operator pod {old['metadata']['name']}")
        await asyncio.to_thread(
            kubectl, "-n", OPERATOR_NAMESPACE, "delete", "pod", old["metadata"]["name"], "--wait=false"
        )

        async def back() -> bool:
            pods = await asyncio.to_thread(live_operators)
            fresh = [p for p in pods if p["metadata"]["name"] not in others | {old["metadata"]["name"]}]
            return len([p for p in pods if ready(p)]) == 2 and bool(fresh)

        assert await eventually(back, 180, interval=1.0), f"no operator pod replaced {old['metadata']['name']}"
        note(f"two operator pods Ready again after {old['metadata']['name']}")

    scaling = asyncio.create_task(scale_up())
    try:
        first, second = sorted(await asyncio.to_thread(live_operators), key=lambda p: p["metadata"]["name"])
        names_before = {first["metadata"]["name"], second["metadata"]["name"]}
        await asyncio.sleep(STEP)  # pods are being created when the first replica goes
        await replace(first, names_before)
        await replace(second, names_before)
        replaced.set()
        await scaling
    finally:
        scaling.cancel()
    assert replicas - 1 >= LEAST, f"only {replicas - 1} pods were created during the rollout"

    async def all_created() -> list[dict[str, Any]]:
        listed = await space.core.list_namespaced_pod(space.name, label_selector="app=billing")
        pods = [space.api.sanitize_for_serialization(p) for p in listed.items]
        return pods if len(pods) >= replicas else []

    pods = await eventually(all_created, 60)
    uninjected = [
        f"{p['metadata']['name']} (created {p['metadata']['creationTimestamp']})"
        for p in pods
        if CONTAINER_NAME not in [c["name"] for c in p["spec"]["containers"]]
    ]
    assert not uninjected, (
        f"{len(uninjected)} of {len(pods)} pods created during the rollout have no sidecar: {uninjected}; "
        + "; ".join(timeline)
    )
    assert all(names.ANNOTATION_INJECTED in p["metadata"]["annotations"] for p in pods)
    await asyncio.to_thread(kubectl, "-n", space.name, "rollout", "status", "deploy/billing", "--timeout=240s")

    async def reported() -> dict[str, Any] | None:
        goqueue = json.loads(
            await asyncio.to_thread(kubectl, "-n", space.name, "get", "goqueue", "billing", "-o", "json")
        )
        status = goqueue.get("status") or {}
        return status if status.get("ready") == f"{replicas}/{replicas}" else None

    status = await eventually(reported, 60, interval=1.0)
    assert status, "the GoQueue never counted every pod ready"
    assert status.get("notInjected") == []
    print(f"{replicas} pods of billing created across the operator's rollout, all injected")
