"""An operator rollout while a Deployment of an identity scales up: every new pod gets its sidecar.

The pod webhook's ``failurePolicy`` is ``Ignore`` (a cluster must not stop creating pods when GoQ is down),
so a pod created while no operator replica answers runs without its sidecar. Two replicas behind the Service
``goq-webhook`` are what prevents it: here one operator pod is deleted, and once the Deployment has brought
a replacement up, the other, while billing's Deployment adds a pod every few seconds throughout.

``required``: the same with the namespace labelled ``goq.io/injection=required`` (``failurePolicy: Fail``): a
review that fails refuses the pod, and the ReplicaSet controller creates it again, so none may lack its sidecar.

Both are strict: exactly zero pods without a sidecar. Measured on this busy 2-core node: before the webhook drain
1 of 35 pods uninjected over 3 runs, with the drain 3 of 21 over 2 runs ("context deadline exceeded" while the
one replica left took the leadership over, its admission server sharing the loop with kopf's start); with the
admission server on a thread of its own (``goq.operator.admission_thread``), 0 of 67 over 5 runs (``lenient``)
and 0 of 23 over 2 (``required``), 2026-12-05.
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
MOST = 20
"""Billing's replicas at most: one more every ``STEP`` s while the operator pods are replaced."""
STEP = 1.25
"""With the admission server answering before its replica leads, a replacement is Ready within seconds: both
were replaced in 10-13 s in a CI run, when one pod every 2.5 s made only 4-5 pods during the rollout."""
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


@pytest.mark.parametrize("injection", ["lenient", "required"])
async def test_pods_created_while_each_operator_replica_is_replaced_in_turn_are_all_injected(
    space: ShopSpace, injection: str
) -> None:
    kubectl = space.cluster.kubectl
    if injection == "required":
        await asyncio.to_thread(kubectl, "label", "namespace", space.name, "goq.io/injection=required")
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
    events = json.loads(
        await asyncio.to_thread(
            kubectl, "-n", space.name, "get", "events", "--field-selector", "reason=FailedCreate", "-o", "json"
        )
    )
    refused = sum(int(e.get("count") or 1) for e in events.get("items", []))
    print(
        f"{injection}: {replicas} pods of billing created across the operator's rollout, all injected; "
        f"{refused} creations refused by the webhook and made again by the ReplicaSet"
    )
