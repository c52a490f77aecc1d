"""``kubectl apply -k manifests/`` works on the real API server, and the manifests hold what the docs promise."""

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from goq.operator.settings import OperatorSettings

from .operator_kube import ROOT, eventually


def kubectl(kubeconfig: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    config = [f"--kubeconfig={kubeconfig}"] if kubeconfig else []
    return subprocess.run(["kubectl", *config, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    done = kubectl(None, "kustomize", str(ROOT / "manifests"))
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_kustomization_has_everything_an_install_needs(built: list[dict[str, Any]]) -> None:
    kinds = {(o["kind"], o["metadata"]["name"]) for o in built}
    assert kinds >= {
        ("Namespace", "goq-system"),
        ("CustomResourceDefinition", "goqueues.goq.io"),
        ("CustomResourceDefinition", "retrypolicies.goq.io"),
        ("ServiceAccount", "goq-operator"),
        ("ClusterRole", "goq-operator"),
        ("ClusterRoleBinding", "goq-operator"),
        ("ClusterRole", "goq-sidecar"),
        ("Deployment", "goq-operator"),
        ("Service", "goq-webhook"),
        ("StatefulSet", "goq-mongodb"),
        ("GoQueue", "orders"),
        ("RetryPolicy", "patient"),
    }
    assert find(built, "Namespace", "goq-system")["metadata"]["labels"]["goq.io/injection"] == "disabled"


def test_every_image_is_pinned_and_the_operator_runs_locked_down(built: list[dict[str, Any]]) -> None:
    for obj in built:
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], image
            assert not image.endswith(":latest"), image
    pod = find(built, "Deployment", "goq-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_operator_deployment_settings_are_valid_settings(built: list[dict[str, Any]]) -> None:
    [container] = find(built, "Deployment", "goq-operator")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", "goq-system") for e in container["env"]}
    settings = OperatorSettings.from_env(env)
    assert settings.namespace == "goq-system"
    assert settings.sidecar.mongodb_secret == "goq-mongodb"
    assert settings.dedupe_window == 7200
    assert settings.webhook.port == container["ports"][0]["containerPort"]
    service = find(built, "Service", "goq-webhook")
    assert service["spec"]["ports"][0]["port"] == 443  # what the webhook registration's service reference uses


def test_the_sidecar_may_only_read_its_settings_and_write_heartbeat_leases(built: list[dict[str, Any]]) -> None:
    rules = find(built, "ClusterRole", "goq-sidecar")["rules"]
    granted = {(r, v) for rule in rules for r in rule["resources"] for v in rule["verbs"]}
    assert granted == {
        ("goqueues", "get"),
        ("goqueues", "list"),
        ("goqueues", "watch"),
        ("retrypolicies", "get"),
        ("retrypolicies", "list"),
        ("retrypolicies", "watch"),
        ("leases", "get"),
        ("leases", "create"),
        ("leases", "patch"),
    }


async def test_kubectl_apply_k_installs_on_the_server(kube_api: k8s.ApiClient, kubeconfig: Path) -> None:
    async def applied() -> bool:
        # The first run may refuse the GoQueue and RetryPolicy until their CRDs are established.
        done = await asyncio.to_thread(kubectl, kubeconfig, "apply", "-k", str(ROOT / "manifests"))
        return done.returncode == 0

    assert await eventually(applied, within=60, interval=1.0), "kubectl apply -k manifests/ kept failing"
    read = await k8s.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        "goq.io", "v1alpha1", "goq-demo", "goqueues", "orders"
    )
    assert read["spec"]["retryPolicy"] == "patient"
    deployment = await k8s.AppsV1Api(kube_api).read_namespaced_deployment("goq-operator", "goq-system")
    assert deployment.spec.template.spec.service_account_name == "goq-operator"
