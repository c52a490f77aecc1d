"""How the operator judges a pod that asks for GoQ: which GoQueue it needs and what to warn about."""

from typing import Any

import pytest

from goq.operator.handlers import PodFinding, examine_pod


def pod(annotations: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "p", "annotations": annotations}}


@pytest.mark.parametrize(
    ("annotations", "identity", "reason"),
    [
        ({}, None, None),
        ({"goq.io/id": "orders", "goq.io/injected": "0.1.0"}, "orders", None),
        ({"goq.io/id": "orders"}, "orders", "NotInjected"),
        ({"goq.io/id": "Orders"}, None, "InvalidIdentity"),
    ],
    ids=["not-asking", "injected", "escaped-injection", "invalid-identity"],
)
def test_a_pod_is_judged_by_its_annotations(
    annotations: dict[str, str], identity: str | None, reason: str | None
) -> None:
    finding = examine_pod(pod(annotations))
    assert (finding.identity, finding.reason) == (identity, reason)


def test_the_warnings_say_what_to_do() -> None:
    assert "recreate it to get the sidecar" in examine_pod(pod({"goq.io/id": "orders"})).message
    invalid = examine_pod(pod({"goq.io/id": "Orders"}))
    assert invalid.message == (
        "GoQ cannot serve this pod: annotation goq.io/id 'Orders' must be lower case "
        "(a DNS-1123 label of at most 59 characters)"
    )
    assert examine_pod(pod({})) == PodFinding(None)
