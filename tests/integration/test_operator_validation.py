"""What the webhook or a sidecar would reject later is refused when a GoQueue is applied, by the real
kube-apiserver (schema) and the operator's validating webhook it calls; unknown fields are pruned first.

One operator serves the module; it injects ``example/goq-sidecar:test`` (not the stock image), so a plug-in
sink is admitted with a warning unless the GoQueue names the stock image.
"""

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from .operator_kube import OperatorProcess, apply_crds, eventually, namespace, running_operator, simple_pod

GROUP, VERSION = "goq.io", "v1alpha1"


@pytest.fixture(scope="module")
async def operator(kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OperatorProcess]:
    await apply_crds(kube_api)
    async with running_operator(kube_api, tmp_path_factory.mktemp("operator")) as handle:
        yield handle


@pytest.fixture(scope="module")
async def ns(kube_api: k8s.ApiClient, operator: OperatorProcess) -> AsyncIterator[str]:
    async with namespace(kube_api, "val") as name:
        yield name


def body(name: str, spec: dict[str, Any], kind: str = "GoQueue") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}


async def create(api: k8s.ApiClient, ns: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = await k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "goqueues", body(name, spec)
    )
    return created


async def refusal(api: k8s.ApiClient, ns: str, name: str, spec: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as refused:
        await create(api, ns, name, spec)
    message: str = json.loads(refused.value.body)["message"]
    return message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # By the schema (holds with the operator down too): the field and the pattern or the missing option.
        (
            {"sidecar": {"resources": {"requests": {"cpu": "lots"}}}},
            ["spec.sidecar.resources.requests.cpu", 'Invalid value: "lots"', "should match"],
        ),
        ({"sidecar": {"resources": {"limits": {"memory": "-1Gi"}}}}, ["spec.sidecar.resources.limits.memory"]),
        ({"poisonQueue": {"type": "file"}}, ["spec.poisonQueue.path: Required value"]),
        ({"poisonQueue": {"type": "http", "url": "ftp://x"}}, ["spec.poisonQueue.url", "should match '^https?://'"]),
        ({"metrics": {"sinks": [{"type": "pushgateway"}]}}, ["spec.metrics.sinks.url: Required value"]),
        ({"maxMessageSize": "lots"}, ["spec.maxMessageSize", "should match"]),
        # By the webhook: what a schema cannot say, with what is allowed.
        (
            {"sidecar": {"resources": {"requests": {"memory": "512Mi"}}}},
            [
                'admission webhook "validate.goq.io" denied the request',
                "GoQueue 'q' is invalid: spec.sidecar.resources: the memory request '512Mi' "
                "(spec.sidecar.resources.requests) exceeds the memory limit '256Mi' (the operator's "
                "GOQ_SIDECAR_LIMITS)",
            ],
        ),
        (
            {"sidecar": {"resources": {"requests": {"nvidia.com/gpu": "1"}}}},
            ["names the resource 'nvidia.com/gpu'; a sidecar may set cpu, ephemeral-storage, memory"],
        ),
        (
            {"poisonQueue": {"type": "file", "path": "/p", "size": 5}},
            ["spec.poisonQueue: poison sink 'file' has unknown option(s) size; known: backups, maxBytes, path"],
        ),
        (
            {"poisonQueue": {"type": "file", "path": "/p", "maxBytes": 10}},
            ["poison sink 'file' option maxBytes must be at least 1024, got 10"],
        ),
        ({"poisonQueue": {"type": "log", "level": "info"}}, ["poison sink 'log' takes no options, got level"]),
        (
            {"metrics": {"sinks": [{"type": "prometheus"}, {"type": "log", "level": "info"}]}},
            ["spec.metrics.sinks[1]: metrics sink 'log' takes no options, got level"],
        ),
        (
            {"poisonQueue": {"type": "nosuchsink"}, "sidecar": {"image": "goq/goq-sidecar:0.1.0"}},
            [
                "spec.poisonQueue.type 'nosuchsink' is not a poison sink of the sidecar image "
                "goq/goq-sidecar:0.1.0, which has mongodb, file, http, log"
            ],
        ),
    ],
)
async def test_what_a_pod_or_sidecar_would_reject_is_refused_when_the_goqueue_is_applied(
    kube_api: k8s.ApiClient, ns: str, spec: dict[str, Any], expected: list[str]
) -> None:
    message = await refusal(kube_api, ns, "q", spec)
    for part in expected:
        assert part in message, message


async def test_valid_quantities_and_sink_options_are_admitted_and_injected_as_written(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    resources = {"requests": {"cpu": "0.1", "memory": "1e8"}, "limits": {"memory": "1.5Gi", "cpu": "+1"}}
    spec = {
        "sidecar": {"resources": resources},
        "poisonQueue": {"type": "http", "url": "https://poison.example/in", "timeout": 2.5, "retries": 1},
        "metrics": {"sinks": [{"type": "pushgateway", "url": "http://pg:9091", "job": "goq"}]},
    }
    created = await create(kube_api, ns, "fine", spec)
    assert created["spec"]["sidecar"] == spec["sidecar"]
    tries = iter(range(50))

    async def sidecar_limits() -> dict[str, str] | None:
        # The operator learns spec.sidecar from its watch: until then a pod gets the operator's defaults.
        pod = simple_pod(f"fine-app-{next(tries)}", {"goq.io/id": "fine"})
        made = await k8s.CoreV1Api(kube_api).create_namespaced_pod(ns, pod)
        [sidecar] = [c for c in made.spec.containers if c.name == "goq-sidecar"]
        limits: dict[str, str] = sidecar.resources.limits
        return limits if limits != {"memory": "256Mi"} else None

    # The API server took the pod (1.5Gi in its canonical form; +1 it keeps as written).
    assert await eventually(sidecar_limits, within=20, interval=0.5) == {"memory": "1536Mi", "cpu": "+1"}


def in_namespace(obj: dict[str, Any], ns: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "namespace": ns}}


def kubectl(kubeconfig: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args, "-f", "-"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_plugin_sink_the_operator_cannot_see_into_is_admitted_with_a_warning(
    kube_api: k8s.ApiClient, ns: str, kubeconfig: Path
) -> None:
    manifest = yaml.safe_dump(in_namespace(body("plugged", {"poisonQueue": {"type": "summary", "path": "/x"}}), ns))
    done = await asyncio.to_thread(kubectl, kubeconfig, manifest, "create")
    assert done.returncode == 0, done.stderr
    assert (
        "Warning: spec.poisonQueue.type 'summary' is not a built-in poison sink (mongodb, file, http, log): the "
        "operator cannot check that the sidecar image example/goq-sidecar:test installs it"
    ) in done.stderr


async def test_unknown_fields_are_pruned_before_the_webhook_and_kubectl_refuses_them_client_side(
    kube_api: k8s.ApiClient, ns: str, kubeconfig: Path
) -> None:
    # Through the API (any client, or kubectl --validate=false): Kubernetes 1.20 prunes them before admission,
    # so the webhook, which refuses unknown fields it sees, admits the object, and the typo is gone.
    spec = {"sendQueueLimt": 5, "metrics": {"intervall": "5s"}, "sidecar": {"imag": "x"}}
    created = await create(kube_api, ns, "typo", spec)
    assert "sendQueueLimt" not in created["spec"]
    assert created["spec"]["sendQueueLimit"] == 10000
    assert created["spec"]["metrics"] == {"interval": "15s", "sinks": [{"type": "prometheus"}]}
    assert created["spec"].get("sidecar") == {}
    # Inside a sink (options are kept for plug-ins) nothing is pruned, so a built-in's typo is refused.
    message = await refusal(kube_api, ns, "typo2", {"poisonQueue": {"type": "mongodb", "colection": "p"}})
    assert "poison sink 'mongodb' has unknown option(s) colection; known: collection" in message
    # kubectl validates against the published schema before it sends anything.
    manifest = yaml.safe_dump(in_namespace(body("typo3", {"sendQueueLimt": 5}), ns))
    done = await asyncio.to_thread(kubectl, kubeconfig, manifest, "apply")
    assert done.returncode != 0
    assert 'unknown field "sendQueueLimt"' in done.stderr
    loose = await asyncio.to_thread(kubectl, kubeconfig, manifest, "apply", "--validate=false")
    assert loose.returncode == 0, loose.stderr
