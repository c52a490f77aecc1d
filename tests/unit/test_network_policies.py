"""The NetworkPolicy examples open exactly the sidecar ports meant for the network, to the peers meant."""

from pathlib import Path
from typing import Any

import yaml

from goq import names

POLICIES = Path(__file__).resolve().parents[2] / "manifests" / "networkpolicies"


def policy(file: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((POLICIES / file).read_text())
    assert (doc["apiVersion"], doc["kind"], doc["spec"]["policyTypes"]) == (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        ["Ingress"],
    )
    return doc


def opened(doc: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """Port -> who may connect to it."""
    return {p["port"]: rule["from"] for rule in doc["spec"]["ingress"] for p in rule["ports"]}


MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_goq_pods_take_peer_traffic_from_goq_pods_and_health_from_monitoring_only() -> None:
    doc = policy("goq-sidecar-ports.yaml")
    labelled = {"matchExpressions": [{"key": names.LABEL_ID, "operator": "Exists"}]}
    assert doc["spec"]["podSelector"] == labelled
    assert opened(doc) == {
        names.PORT_PEER: [{"namespaceSelector": {}, "podSelector": labelled}],
        names.PORT_HEALTH: MONITORING,
    }


def test_billing_takes_peer_traffic_only_from_orders_of_its_namespace() -> None:
    doc = policy("billing-from-orders.yaml")
    assert doc["spec"]["podSelector"] == {"matchLabels": {names.LABEL_ID: "billing"}}
    orders_of_shop = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}},
        "podSelector": {"matchLabels": {names.LABEL_ID: "orders"}},
    }
    assert opened(doc) == {names.PORT_PEER: [orders_of_shop], names.PORT_HEALTH: MONITORING}


def test_no_example_opens_the_applications_loopback_ports() -> None:
    for file in sorted(POLICIES.glob("*.yaml")):
        assert not {names.PORT_REST, names.PORT_GRPC} & set(opened(policy(file.name))), file.name
