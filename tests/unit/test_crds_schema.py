"""The CRDs say what the Python validators say: same patterns, bounds and defaults; every field described."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from goq.durations import DURATION_PATTERN, parse_duration
from goq.errors import ConfigError
from goq.identity import MAX_IDENTITY_LENGTH, validate_identity
from goq.queue_spec import QUEUE_LIMIT_MAX, GoQueueSpec
from goq.retry import MAX_ATTEMPTS_LIMIT, RetryPolicy

CRDS = Path(__file__).resolve().parents[2] / "crds"


def schema(file: str) -> dict[str, Any]:
    crd = yaml.safe_load((CRDS / file).read_text())
    [version] = crd["spec"]["versions"]
    result: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return result


GOQUEUE = schema("goqueues.yaml")
RETRY = schema("retrypolicies.yaml")
GQ_SPEC = GOQUEUE["properties"]["spec"]["properties"]
RP_SPEC = RETRY["properties"]["spec"]["properties"]


def undescribed(node: dict[str, Any], path: str) -> list[str]:
    missing = [] if node.get("description") or path.endswith(".metadata") else [path]
    for name, child in (node.get("properties") or {}).items():
        missing += undescribed(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            missing += undescribed(node[key], f"{path}[]")
    return missing


@pytest.mark.parametrize("file", ["goqueues.yaml", "retrypolicies.yaml"])
def test_every_field_has_a_description_for_kubectl_explain(file: str) -> None:
    assert undescribed(schema(file), "") == []


IDENTITIES = ["orders", "a", "a1-b2", "9lives", "o" * 59, "o" * 60, "Orders", "-a", "a-", "a_b", "a.b", "", "ä"]


@pytest.mark.parametrize("value", IDENTITIES)
def test_the_identity_pattern_and_length_accept_exactly_what_validate_identity_accepts(value: str) -> None:
    field = GQ_SPEC["retryPolicy"]
    by_schema = bool(re.search(field["pattern"], value)) and len(value) <= field["maxLength"]
    try:
        validate_identity(value)
        by_python = True
    except ConfigError:
        by_python = False
    assert by_schema == by_python
    assert field["maxLength"] == MAX_IDENTITY_LENGTH
    assert GOQUEUE["properties"]["metadata"]["properties"]["name"]["pattern"] == field["pattern"]


DURATIONS = ["250ms", "30s", "5m", "1h", "1h30m", "1.5s", "0s", "30", "s", "1d", "1 h", "-1s", "1h30", "ms", "1.s"]


@pytest.mark.parametrize("value", DURATIONS)
def test_the_duration_pattern_accepts_exactly_what_parse_duration_accepts(value: str) -> None:
    try:
        parse_duration(value)
        by_python = True
    except ConfigError:
        by_python = False
    for field in (RP_SPEC["initialBackoff"], RP_SPEC["maxAge"], GQ_SPEC["metrics"]["properties"]["interval"]):
        assert field["pattern"] == DURATION_PATTERN
        assert bool(re.search(field["pattern"], value)) == by_python


def defaults_of(properties: dict[str, Any]) -> dict[str, Any]:
    """What the API server fills into an empty object (nested object defaults included)."""
    filled: dict[str, Any] = {}
    for name, field in properties.items():
        if "default" in field:
            value = field["default"]
            if isinstance(value, dict) and field.get("properties"):
                value = {**defaults_of(field["properties"]), **value}
            filled[name] = value
    return filled


def test_the_schema_defaults_are_the_python_defaults() -> None:
    assert GoQueueSpec.from_spec(defaults_of(GQ_SPEC)) == GoQueueSpec()
    assert RetryPolicy.from_spec(defaults_of(RP_SPEC)) == RetryPolicy()
    assert RetryPolicy().to_spec() == {**defaults_of(RP_SPEC), "multiplier": 2.0}


def test_the_schema_bounds_are_the_python_bounds() -> None:
    assert (RP_SPEC["maxAttempts"]["minimum"], RP_SPEC["maxAttempts"]["maximum"]) == (1, MAX_ATTEMPTS_LIMIT)
    assert (RP_SPEC["jitter"]["minimum"], RP_SPEC["jitter"]["maximum"]) == (0, 1)
    assert (RP_SPEC["multiplier"]["minimum"], RP_SPEC["multiplier"]["maximum"]) == (1, 10)
    for limit in ("sendQueueLimit", "receiveQueueLimit"):
        assert (GQ_SPEC[limit]["minimum"], GQ_SPEC[limit]["maximum"]) == (1, QUEUE_LIMIT_MAX)
    assert GQ_SPEC["overflow"]["enum"] == ["poison", "reject"]


def test_printer_columns_and_short_names_are_the_contract() -> None:
    crd = yaml.safe_load((CRDS / "goqueues.yaml").read_text())
    printed = crd["spec"]["versions"][0]["additionalPrinterColumns"]
    columns = [c["name"].upper() for c in printed if not c.get("priority")]
    assert columns == ["READY", "PODS", "SENDQ", "RECVQ", "DELIVERED", "POISONED", "AGE"]
    assert [c["name"].upper() for c in printed if c.get("priority")] == ["UNHEALTHY", "PROBLEM"]  # -o wide
    assert crd["spec"]["names"]["shortNames"] == ["gq"]
    assert yaml.safe_load((CRDS / "retrypolicies.yaml").read_text())["spec"]["names"]["shortNames"] == ["rp"]
    assert crd["spec"]["versions"][0]["subresources"] == {"status": {}}
