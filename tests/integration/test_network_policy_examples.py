"""The NetworkPolicy examples in manifests/networkpolicies/ are valid objects for the real API server."""

import uuid
from pathlib import Path

import yaml
from kubernetes_asyncio import client as k8s

POLICIES = Path(__file__).resolve().parents[2] / "manifests" / "networkpolicies"


async def test_every_network_policy_example_is_accepted_by_the_api_server(kube_api: k8s.ApiClient) -> None:
    core, networking = k8s.CoreV1Api(kube_api), k8s.NetworkingV1Api(kube_api)
    namespace = f"netpol-{uuid.uuid4().hex[:8]}"
    await core.create_namespace({"metadata": {"name": namespace}})
    try:
        created = []
        for file in sorted(POLICIES.glob("*.yaml")):
            doc = yaml.safe_load(file.read_text())
            doc["metadata"]["namespace"] = namespace
            made = await networking.create_namespaced_network_policy(namespace, doc)
            created.append((file.name, made.metadata.name, len(made.spec.ingress)))
        assert created == [
            ("app-ports-example.yaml", "billing-http", 1),
            ("billing-from-orders.yaml", "goq-billing-peers", 2),
            ("goq-sidecar-ports.yaml", "goq-sidecar-ports", 2),
        ]
    finally:
        await core.delete_namespace(namespace)
