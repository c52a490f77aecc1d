"""Strict injection: ``goq.io/injection=required`` on a namespace or a pod sends its pods to a Fail entry.

Why: with ``failurePolicy: Ignore`` a review lost on a replica killed mid-answer lets the pod run without its
sidecar (1 pod of 49 in one of 16 runs that SIGKILL the leader). Opted in, the pod is refused instead and its ReplicaSet
creates it again. The selectors are checked here by a small evaluator of label-selector expressions;
tests/integration/test_strict_injection.py checks them on a real API server.
"""

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from goq.errors import ConfigError
from goq.operator.admission import review_mutation, review_validation
from goq.operator.registration import mutating_configuration, validating_configuration
from goq.operator.settings import OperatorSettings
from goq.webhook.injection_label import check_injection_label, validate_namespace

SETTINGS = OperatorSettings()
VALUES = (None, "disabled", "required", "Required")


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector's matchExpressions (In, NotIn, Exists) against labels, as the API server evaluates them."""
    for expression in (selector or {}).get("matchExpressions", []):
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value is not None and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
    return True


def labels(value: str | None) -> dict[str, str]:
    return {} if value is None else {"goq.io/injection": value}


def entries_for(namespace: str | None, pod: str | None) -> list[tuple[str, str]]:
    hooks = mutating_configuration(SETTINGS, b"CA")["webhooks"]
    return [
        (h["name"], h["failurePolicy"])
        for h in hooks
        if matches(h["namespaceSelector"], labels(namespace)) and matches(h["objectSelector"], labels(pod))
    ]


@pytest.mark.parametrize("namespace", VALUES)
@pytest.mark.parametrize("pod", VALUES)
def test_each_pod_goes_to_at_most_one_entry_and_required_is_strict(namespace: str | None, pod: str | None) -> None:
    sent = entries_for(namespace, pod)
    if "disabled" in (namespace, pod):
        assert sent == [], "an opted-out namespace or pod is never sent"
    elif namespace == "required":
        assert sent == [("inject-required.goq.io", "Fail")]
    elif pod == "required":
        assert sent == [("inject-required-pod.goq.io", "Fail")]
    else:  # no label, or a wrong value (which the webhook then refuses, and the namespace webhook earlier)
        assert sent == [("inject.goq.io", "Ignore")]


def test_only_namespaces_with_a_value_goq_does_not_know_are_sent_to_the_namespace_check() -> None:
    *_, hook = validating_configuration(SETTINGS, b"CA")["webhooks"]
    assert (hook["name"], hook["failurePolicy"], hook["clientConfig"]["service"]["path"]) == (
        "validate-namespace.goq.io",
        "Ignore",
        "/validate-namespaces",
    )
    assert hook["rules"][0]["resources"] == ["namespaces"]
    assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    sent = {value: matches(hook["objectSelector"], labels(value)) for value in (*VALUES, "enabled", "")}
    assert sent == {None: False, "disabled": False, "required": False, "Required": True, "enabled": True, "": True}


@pytest.mark.parametrize("value", ["Required", "enabled", "true", ""])
def test_a_wrong_label_value_is_refused_with_the_values_allowed(value: str) -> None:
    namespace = {"kind": "Namespace", "metadata": {"name": "shop", "labels": {"goq.io/injection": value}}}
    with pytest.raises(ConfigError) as refused:
        validate_namespace(namespace)
    message = str(refused.value)
    assert f"namespace 'shop': label goq.io/injection={value!r} is not a value GoQ knows" in message
    assert "goq.io/injection=disabled" in message
    assert "goq.io/injection=required" in message
    with pytest.raises(ConfigError, match=r"pod shop/p: label goq\.io/injection"):
        check_injection_label({"metadata": namespace["metadata"] | {"name": "p"}}, "pod shop/p")


@pytest.mark.parametrize("value", [None, "disabled", "required"])
def test_the_known_values_and_no_label_pass(value: str | None) -> None:
    validate_namespace({"kind": "Namespace", "metadata": {"name": "shop", "labels": labels(value)}})
    check_injection_label({"metadata": {"labels": labels(value)}}, "pod")
    validate_namespace({"kind": "Pod", "metadata": {"labels": labels("bogus")}})  # only namespaces are its job


def test_the_webhooks_refuse_a_wrong_value_on_a_pod_and_on_a_namespace_update_that_keeps_its_spec() -> None:
    from goq.cli.operator import mutator_for

    mutate = mutator_for(SETTINGS)("1", "30", lambda namespace, identity: None)
    pod = {
        "metadata": {"generateName": "orders-", "annotations": {"goq.io/id": "orders"}, "labels": labels("Required")},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
    }
    outcomes: Counter[str] = Counter()
    request = {"uid": "u", "namespace": "shop", "operation": "CREATE", "object": pod}
    answer = review_mutation({"request": request}, mutate, outcomes)["response"]
    assert answer["allowed"] is False
    assert "pod shop/orders-*: label goq.io/injection='Required'" in answer["status"]["message"]

    old = {"kind": "Namespace", "metadata": {"name": "shop"}, "spec": {"finalizers": ["kubernetes"]}}
    new = old | {"metadata": {"name": "shop", "labels": labels("enabled")}}
    request = {"uid": "n", "operation": "UPDATE", "object": new, "oldObject": old}
    answer = review_validation({"request": request}, validate_namespace, outcomes, unchanged_spec_passes=False)
    assert answer["response"]["allowed"] is False
    assert "namespace 'shop'" in answer["response"]["status"]["message"]
