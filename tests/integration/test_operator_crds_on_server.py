"""The CRDs on the real kube-apiserver: they apply, default, refuse bad objects clearly, and print columns."""

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from .operator_kube import apply_crds, eventually, namespace

GROUP, VERSION = "goq.io", "v1alpha1"


@pytest.fixture(scope="module")
async def crds(kube_api: k8s.ApiClient) -> None:
    await apply_crds(kube_api)


@pytest.fixture(scope="module")
async def ns(kube_api: k8s.ApiClient, crds: None) -> AsyncIterator[str]:
    """One namespace for the module (each test names its objects apart): less work for the controllers."""
    async with namespace(kube_api, "crd") as name:
        yield name


async def create(api: k8s.ApiClient, ns: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    plural = {"GoQueue": "goqueues", "RetryPolicy": "retrypolicies"}[kind]
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    created: dict[str, Any] = await k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, plural, body
    )
    return created


async def test_an_empty_goqueue_gets_every_default(kube_api: k8s.ApiClient, ns: str) -> None:
    created = await create(kube_api, ns, "GoQueue", "defaulted", {})
    assert created["spec"] == {
        "maxMessageSize": "64Mi",
        "sendQueueLimit": 10000,
        "receiveQueueLimit": 10000,
        "overflow": "poison",
        "poisonQueue": {"type": "mongodb"},
        "metrics": {"interval": "15s", "sinks": [{"type": "prometheus"}]},
    }


async def test_the_design_example_is_accepted_as_written(kube_api: k8s.ApiClient, ns: str) -> None:
    policy = {
        "maxAttempts": 8,
        "initialBackoff": "200ms",
        "maxBackoff": "30s",
        "multiplier": 2.0,
        "jitter": 0.2,
        "attemptTimeout": "5s",
        "maxAge": "1h",
    }
    assert (await create(kube_api, ns, "RetryPolicy", "patient", policy))["spec"] == policy
    spec = {
        "retryPolicy": "patient",
        "sendQueueLimit": 10000,
        "receiveQueueLimit": 10000,
        "overflow": "poison",
        "poisonQueue": {"type": "mongodb"},
        "metrics": {"interval": "15s", "sinks": [{"type": "prometheus"}, {"type": "log"}]},
        "maxMessageSize": "64Mi",
    }
    assert (await create(kube_api, ns, "GoQueue", "design", spec))["spec"] == spec


@pytest.mark.parametrize(
    ("kind", "name", "spec", "messages"),
    [
        ("RetryPolicy", "p", {"initialBackoff": "soon"}, ["spec.initialBackoff", "should match"]),
        ("RetryPolicy", "p", {"maxAttempts": 0}, ["spec.maxAttempts", "should be greater than or equal to 1"]),
        ("RetryPolicy", "p", {"jitter": 1.5}, ["spec.jitter", "less than or equal to 1"]),
        ("GoQueue", "q", {"sendQueueLimit": -5}, ["spec.sendQueueLimit", "greater than or equal to 1"]),
        ("GoQueue", "q", {"overflow": "drop"}, ["spec.overflow", 'Unsupported value: \\"drop\\"']),
        ("GoQueue", "q", {"retryPolicy": "Patient"}, ["spec.retryPolicy", "should match"]),
        ("GoQueue", "q", {"metrics": {"interval": "1d"}}, ["spec.metrics.interval", "should match"]),
        ("GoQueue", "q", {"poisonQueue": {"path": "/x"}}, ["spec.poisonQueue.type", "Required value"]),
        ("GoQueue", "q", {"poisonQueue": {"type": "file"}}, ["spec.poisonQueue.path: Required value"]),
        ("GoQueue", "q", {"maxMessageSize": "64MB"}, ["spec.maxMessageSize", "should match"]),
        ("GoQueue", "q", {"maxMessageSize": 2**33}, ["spec.maxMessageSize", "less than or equal to 4294967296"]),
        ("GoQueue", "q", {"sidecar": {"resources": {"limits": {"cpu": "1 core"}}}}, ["limits.cpu", "should match"]),
        ("GoQueue", "Orders", {}, ["metadata.name", "should match"]),
        ("GoQueue", "o" * 60, {}, ["metadata.name", "should be at most 59 chars long"]),
    ],
)
async def test_invalid_objects_are_refused_naming_the_field(
    kube_api: k8s.ApiClient, ns: str, kind: str, name: str, spec: dict[str, Any], messages: list[str]
) -> None:
    with pytest.raises(ApiException) as refused:
        await create(kube_api, ns, kind, name, spec)
    assert refused.value.status == 422
    for message in messages:
        assert message in refused.value.body


def kubectl(kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_kubectl_shows_the_columns_and_explains_the_fields(
    kube_api: k8s.ApiClient, ns: str, kubeconfig: Path
) -> None:
    await create(kube_api, ns, "GoQueue", "listed", {})
    table = await asyncio.to_thread(kubectl, kubeconfig, "get", "gq", "listed", "-n", ns)
    assert table.split("\n")[0].split() == ["NAME", "READY", "PODS", "SENDQ", "RECVQ", "DELIVERED", "POISONED", "AGE"]
    assert table.split("\n")[1].split()[0] == "listed"

    async def explained() -> str:
        # The API server publishes a new CRD's OpenAPI schema a few seconds after it is established.
        done = await asyncio.to_thread(
            subprocess.run,
            ["kubectl", f"--kubeconfig={kubeconfig}", "explain", "goqueue.spec.overflow"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout if done.returncode == 0 else ""

    assert "poison (to the poison queue" in await eventually(explained, within=60, interval=1.0)
