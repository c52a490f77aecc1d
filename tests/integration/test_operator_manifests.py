"""``kubectl apply -k manifests/`` installs GoQ alone, in one apply, on the real API server; samples apart.

The install (``manifests/``) holds only GoQ; the demo MongoDB (``manifests/demo-mongodb/``) and the sample
identity (``manifests/samples/``) are kustomizations of their own, as docs/deploy.md tells users.
"""

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s

from goq.devenv.node.install import PDB_V1BETA1
from goq.operator.settings import OperatorSettings

from .operator_kube import ROOT, eventually


def kubectl(kubeconfig: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    config = [f"--kubeconfig={kubeconfig}"] if kubeconfig else []
    return subprocess.run(["kubectl", *config, *args], capture_output=True, text=True, timeout=120, check=False)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    done = kubectl(None, "kustomize", str(directory))
    assert done.returncode == 0, done.stderr
    return list(yaml.safe_load_all(done.stdout))


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kustomize(ROOT / "manifests")


@pytest.fixture(scope="module")
def extras() -> dict[str, list[dict[str, Any]]]:
    return {name: kustomize(ROOT / "manifests" / name) for name in ("samples", "demo-mongodb")}


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_the_install_has_everything_goq_needs_and_nothing_else(built: list[dict[str, Any]]) -> None:
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
        ("PodDisruptionBudget", "goq-operator"),
    }
    assert find(built, "Namespace", "goq-system")["metadata"]["labels"]["goq.io/injection"] == "disabled"
    # No sample, no database, no custom resource (which would have to wait for its CRD): GoQ's own objects only.
    assert {o["kind"] for o in built} <= {
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ConfigMap",
    }
    assert {o["metadata"].get("namespace", "goq-system") for o in built} == {"goq-system"}
    assert all(o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "goq" for o in built)


def test_the_pdb_covers_the_operator_pods_and_never_blocks_a_drain(built: list[dict[str, Any]]) -> None:
    pdb = find(built, "PodDisruptionBudget", "goq-operator")
    deployment = find(built, "Deployment", "goq-operator")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}


def test_the_samples_and_the_demo_mongodb_are_kustomizations_of_their_own(
    extras: dict[str, list[dict[str, Any]]], built: list[dict[str, Any]]
) -> None:
    samples = {(o["kind"], o["metadata"]["name"]) for o in extras["samples"]}
    assert samples >= {("Namespace", "goq-demo"), ("GoQueue", "orders"), ("RetryPolicy", "patient")}
    mongodb = {(o["kind"], o["metadata"]["name"]) for o in extras["demo-mongodb"]}
    assert mongodb >= {("StatefulSet", "goq-mongodb"), ("Service", "goq-mongodb"), ("Secret", "goq-mongodb")}
    [container] = find(built, "Deployment", "goq-operator")["spec"]["template"]["spec"]["containers"]
    source = next(e["value"] for e in container["env"] if e["name"] == "GOQ_MONGODB_SOURCE_SECRET")
    assert find(extras["demo-mongodb"], "Secret", source)["metadata"]["namespace"] == "goq-system"


def test_every_image_is_pinned_and_the_operator_runs_locked_down(
    built: list[dict[str, Any]], extras: dict[str, list[dict[str, Any]]]
) -> None:
    for obj in [*built, *extras["samples"], *extras["demo-mongodb"]]:
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], image
            assert not image.endswith(":latest"), image
    pod = find(built, "Deployment", "goq-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The kubelet would set GOQ_WEBHOOK_PORT=tcp://... for the Service goq-webhook: the operator's own setting.
    assert pod["enableServiceLinks"] is False
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


def test_the_operator_may_read_and_change_only_its_own_secrets_by_name(built: list[dict[str, Any]]) -> None:
    rules = find(built, "ClusterRole", "goq-operator")["rules"]
    secrets = [r for r in rules if "secrets" in r["resources"]]
    named = {(name, verb) for r in secrets for name in r.get("resourceNames", ["*"]) for verb in r["verbs"]}
    own = ["goq-hmac-keys", "goq-webhook-tls", "goq-mongodb", "goq-identity-ca", "goq-identity-tls"]
    assert named == {("*", "create")} | {(name, verb) for name in own for verb in ("get", "update")} | {
        ("goq-identity-tls", "list"),
        ("goq-mongodb-admin", "get"),  # GOQ_MONGODB_ADMIN_SECRET, read only
    }, "a Secret rule without resourceNames would let the operator read or overwrite any Secret of the cluster"


def kube_1_20_overlay(directory: Path) -> Path:
    """What docs/deploy.md tells Kubernetes 1.20 users to apply: the install, its PDB as policy/v1beta1."""
    directory.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "resources": [os.path.relpath(ROOT / "manifests", directory)],
        "patches": [{"target": {"kind": "PodDisruptionBudget", "name": "goq-operator"}, "patch": PDB_V1BETA1}],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


async def test_kubectl_apply_k_installs_on_the_server_in_one_apply(
    kube_api: k8s.ApiClient, kubeconfig: Path, tmp_path: Path
) -> None:
    overlay = kube_1_20_overlay(tmp_path / "kube-1.20")  # the test's API server is Kubernetes 1.20
    done = await asyncio.to_thread(kubectl, kubeconfig, "apply", "-k", str(overlay))
    assert done.returncode == 0, f"the install took more than one apply: {done.stderr}"
    pdb = await asyncio.to_thread(kubectl, kubeconfig, "-n", "goq-system", "get", "pdb", "goq-operator", "-o", "json")
    assert json.loads(pdb.stdout)["spec"]["maxUnavailable"] == 1, pdb.stderr

    async def samples_applied() -> bool:
        # Samples come after the install: their GoQueue and RetryPolicy wait for the CRDs to be established.
        done = await asyncio.to_thread(kubectl, kubeconfig, "apply", "-k", str(ROOT / "manifests" / "samples"))
        return done.returncode == 0

    assert await eventually(samples_applied, within=60, interval=1.0), "kubectl apply -k manifests/samples kept failing"
    read = await k8s.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        "goq.io", "v1alpha1", "goq-demo", "goqueues", "orders"
    )
    assert read["spec"]["retryPolicy"] == "patient"
    deployment = await k8s.AppsV1Api(kube_api).read_namespaced_deployment("goq-operator", "goq-system")
    assert deployment.spec.template.spec.service_account_name == "goq-operator"
