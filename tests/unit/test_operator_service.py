"""The per-identity Service and the default GoQueue are what the contract fixes."""

from goq.operator.handlers import default_goqueue
from goq.operator.services import service_body

GOQUEUE = {"metadata": {"name": "orders", "namespace": "shop", "uid": "u-1"}}


def test_the_service_is_headless_selects_the_identity_label_and_is_owned_by_the_goqueue() -> None:
    service = service_body(GOQUEUE)
    assert service["metadata"]["name"] == "goq-orders"
    assert service["metadata"]["namespace"] == "shop"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"goq.io/id": "orders"}
    assert service["spec"]["ports"] == [{"name": "peer", "port": 7702, "targetPort": 7702, "protocol": "TCP"}]
    [owner] = service["metadata"]["ownerReferences"]
    assert (owner["apiVersion"], owner["kind"], owner["name"], owner["uid"]) == (
        "goq.io/v1alpha1",
        "GoQueue",
        "orders",
        "u-1",
    )
    assert owner["controller"] is True


def test_a_goqueue_made_for_a_pod_has_an_empty_spec_so_the_schema_defaults_apply() -> None:
    made = default_goqueue("orders", "shop")
    assert made["spec"] == {}
    assert made["metadata"]["name"] == "orders"
    assert made["kind"] == "GoQueue"
