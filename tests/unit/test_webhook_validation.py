"""Custom-resource validation refuses what the 1.20 schema cannot, with the object and field named."""

from typing import Any

import pytest

from goq.cli.operator import injection_settings, validator_for
from goq.errors import ConfigError
from goq.operator.settings import OperatorSettings
from goq.webhook import validate_custom_object
from goq.webhook.container import sidecar_container


def obj(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "goq.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


@pytest.mark.parametrize(
    "valid",
    [
        obj("GoQueue", "orders", {}),
        obj("GoQueue", "orders", {"retryPolicy": "patient", "overflow": "reject", "metrics": {"interval": "15s"}}),
        obj("RetryPolicy", "patient", {"initialBackoff": "200ms", "maxBackoff": "30s", "maxAge": "1h"}),
        obj("RetryPolicy", "same", {"initialBackoff": "1s", "maxBackoff": "1s"}),
        {"kind": "ConfigMap", "metadata": {"name": "Anything_Goes"}},
    ],
    ids=["empty-goqueue", "full-goqueue", "retrypolicy", "equal-backoffs", "other-kind"],
)
def test_valid_objects_pass(valid: dict[str, Any]) -> None:
    validate_custom_object(valid)


@pytest.mark.parametrize(
    ("invalid", "message"),
    [
        (
            obj("RetryPolicy", "rushed", {"initialBackoff": "1m", "maxBackoff": "30s"}),
            "RetryPolicy 'rushed' is invalid: initialBackoff (1m) must not exceed maxBackoff (30s)",
        ),
        (
            obj("RetryPolicy", "slow", {"attemptTimeout": "2h"}),
            "RetryPolicy 'slow' is invalid: spec.attemptTimeout must be from 10ms to 1h, got '2h'",
        ),
        (
            obj("GoQueue", "orders", {"metrics": {"interval": "500ms"}}),
            "GoQueue 'orders' is invalid: spec.metrics.interval must be from 1s to 1h, got '500ms'",
        ),
        (
            obj("GoQueue", "orders", {"sendQueueLimt": 3}),
            "GoQueue 'orders' is invalid: spec has unknown field(s) sendQueueLimt",
        ),
        (obj("GoQueue", "Orders", {}), "GoQueue 'Orders' is invalid: the name 'Orders' must be lower case"),
    ],
)
def test_invalid_objects_are_refused_with_object_and_field(invalid: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        validate_custom_object(invalid)
    assert message in str(refused.value)


def test_a_retry_policy_may_retry_up_to_the_dedupe_window_and_no_longer() -> None:
    validate_custom_object(obj("RetryPolicy", "patient", {"maxAge": "2h"}))  # the default window, 2h
    with pytest.raises(ConfigError) as refused:
        validate_custom_object(obj("RetryPolicy", "stubborn", {"maxAge": "2h30m"}))
    assert str(refused.value).startswith(
        "RetryPolicy 'stubborn' is invalid: spec.maxAge (2h30m) exceeds the de-duplication window "
        "(2h, the operator's GOQ_DEDUPE_WINDOW)"
    )
    assert "maxAge may be at most 2h" in str(refused.value)


def test_the_operators_dedupe_window_bounds_retry_policies_and_reaches_every_sidecar() -> None:
    settings = OperatorSettings.from_env({"GOQ_DEDUPE_WINDOW": "30m"})
    validate = validator_for(settings)

    validate(obj("RetryPolicy", "brief", {"maxAge": "30m"}))
    with pytest.raises(ConfigError, match=r"spec.maxAge \(1h\) exceeds the de-duplication window \(30m"):
        validate(obj("RetryPolicy", "patient", {"maxAge": "1h"}))
    env = sidecar_container("orders", injection_settings(settings, "1", "30"))["env"]
    assert {"name": "GOQ_DEDUPE_WINDOW", "value": "30m"} in env
