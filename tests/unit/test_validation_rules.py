"""The rules that keep a bad GoQueue out: Kubernetes quantities, sink options shared by the sidecar's sinks
and the webhook, the CRD schema saying the same as the Python, and warnings for what cannot be checked."""

import re
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from goq.errors import ConfigError
from goq.operator.admission import review_validation
from goq.quantities import QUANTITY_PATTERN, parse_quantity
from goq.queue_spec import parse_size
from goq.sink_options import BUILTIN, METRICS, POISON, check_sink
from goq.webhook import InjectionSettings, validate_custom_object

CRD = yaml.safe_load((Path(__file__).resolve().parents[2] / "crds" / "goqueues.yaml").read_text())
SPEC = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]

QUANTITIES = {
    "50m": Decimal("0.05"),
    "0.5": Decimal("0.5"),
    "1": Decimal(1),
    "+1": Decimal(1),
    "1.": Decimal(1),
    ".5": Decimal("0.5"),
    "64Mi": Decimal(64 * 2**20),
    "1.5Gi": Decimal(3 * 2**29),
    "1e3": Decimal(1000),
    "1E-3": Decimal("0.001"),
    "2k": Decimal(2000),
    "100n": Decimal("1e-7"),
    "3Ei": Decimal(3 * 2**60),
    "0": Decimal(0),
}
NOT_QUANTITIES = ["lots", "", "-1", "1.2.3", "64MB", "64mi", "1 Gi", " 1", "Mi", "1e", "1Ki5", "1KiB", ".", "1K"]


@pytest.mark.parametrize(("text", "value"), QUANTITIES.items())
def test_quantities_parse_to_what_kubernetes_means(text: str, value: Decimal) -> None:
    assert parse_quantity(text, "q") == value


@pytest.mark.parametrize("text", NOT_QUANTITIES)
def test_what_the_api_server_cannot_parse_or_no_container_allows_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^spec.sidecar.resources.requests.cpu must be a non-negative Kubernetes"):
        parse_quantity(text, "spec.sidecar.resources.requests.cpu")


@pytest.mark.parametrize("text", [*QUANTITIES, *NOT_QUANTITIES])
def test_the_crd_quantity_pattern_accepts_exactly_what_parse_quantity_accepts(text: str) -> None:
    resources = SPEC["sidecar"]["properties"]["resources"]["properties"]
    for part in ("requests", "limits"):
        assert resources[part]["additionalProperties"]["pattern"] == QUANTITY_PATTERN
    assert bool(re.search(QUANTITY_PATTERN, text)) == (text in QUANTITIES)


@pytest.mark.parametrize("text", ["64Mi", "1Gi", "10M", "512Ki", "7", "64MB", "1.5Gi", "Mi", "-1", "1e3"])
def test_the_crd_max_message_size_pattern_accepts_what_parse_size_accepts(text: str) -> None:
    field = SPEC["maxMessageSize"]
    try:
        parse_size(text, "spec.maxMessageSize", 0)
        by_python = True
    except ConfigError:
        by_python = False
    assert bool(re.search(field["pattern"], text)) == by_python
    assert (field["minimum"], field["maximum"], field["default"]) == (1, 4 * 2**30, "64Mi")


def schema_required(node: Mapping[str, Any]) -> dict[str, set[str]]:
    """sink type -> the options the CRD's anyOf requires for it."""
    found: dict[str, set[str]] = {}
    for branch in node["anyOf"]:
        enum = branch["properties"]["type"].get("enum")
        if enum:
            found[enum[0]] = set(branch["required"])
    return found


def test_the_crd_requires_exactly_the_options_the_built_in_sinks_require() -> None:
    metrics_items = SPEC["metrics"]["properties"]["sinks"]["items"]
    for kind, node in ((POISON, SPEC["poisonQueue"]), (METRICS, metrics_items)):
        required = {name: {o.name for o in opts if o.required} for name, opts in BUILTIN[kind].items()}
        assert schema_required(node) == {name: names for name, names in required.items() if names}


@pytest.mark.parametrize(
    ("kind", "sink", "options", "message"),
    [
        (POISON, "file", {}, "poison sink 'file' needs option path (a non-empty string)"),
        (POISON, "file", {"path": "/p", "size": 1}, "unknown option(s) size; known: backups, maxBytes, path"),
        (POISON, "file", {"path": "/p", "backups": -1}, "option backups must be at least 0, got -1"),
        (POISON, "file", {"path": "/p", "maxBytes": "big"}, "option maxBytes must be an integer, got 'big'"),
        (POISON, "http", {"url": "ftp://x"}, "option url must be a URL starting with http:// or https://"),
        (POISON, "http", {"url": "http://x", "timeout": 0}, "option timeout must be greater than 0, got 0"),
        (POISON, "log", {"level": "info"}, "poison sink 'log' takes no options, got level"),
        (POISON, "mongodb", {"collection": 5}, "option collection must be a non-empty string, got 5"),
        (METRICS, "pushgateway", {"job": "x"}, "metrics sink 'pushgateway' needs option url"),
        (METRICS, "prometheus", {"port": 1}, "metrics sink 'prometheus' takes no options, got port"),
    ],
)
def test_built_in_sink_options_are_checked_in_one_place(
    kind: Any, sink: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        check_sink(kind, sink, options)
    assert message in str(refused.value)


def test_good_built_in_options_and_any_plugin_pass_the_shared_check() -> None:
    check_sink(POISON, "file", {"path": "/p", "maxBytes": 2048, "backups": 0})
    check_sink(POISON, "http", {"url": "https://x", "timeout": 0.5, "retries": 0})
    check_sink(METRICS, "pushgateway", {"url": "http://pg:9091", "job": "goq"})
    check_sink(POISON, "summary", {"anything": object()})  # a plug-in checks its own when it loads


def goqueue(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "goq.io/v1alpha1", "kind": "GoQueue", "metadata": {"name": "orders"}, "spec": spec}


OPERATOR = InjectionSettings(
    image="registry.example/goq-sidecar:1", requests={"cpu": "50m"}, limits={"memory": "256Mi"}
)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"sidecar": {"resources": {"requests": {"cpu": "lots"}}}}, "spec.sidecar.resources.requests.cpu must be"),
        (
            {"sidecar": {"resources": {"requests": {"memory": "1Gi"}}}},
            "the memory request '1Gi' (spec.sidecar.resources.requests) exceeds the memory limit '256Mi' "
            "(the operator's GOQ_SIDECAR_LIMITS)",
        ),
        (
            {"sidecar": {"resources": {"limits": {"cpu": "10m"}}}},
            "the cpu request '50m' (the operator's GOQ_SIDECAR_REQUESTS) exceeds the cpu limit '10m' "
            "(spec.sidecar.resources.limits)",
        ),
        ({"sidecar": {"resources": {"limits": {"gpu": "1"}}}}, "names the resource 'gpu'; a sidecar may set cpu"),
        ({"sidecar": {"image": "my image"}}, "spec.sidecar.image must be an image reference without spaces"),
        ({"poisonQueue": {"type": "file"}}, "spec.poisonQueue: poison sink 'file' needs option path"),
        ({"metrics": {"sinks": [{"type": "log", "x": 1}]}}, "spec.metrics.sinks[0]: metrics sink 'log' takes no"),
        (
            {"poisonQueue": {"type": "nosuchsink"}, "sidecar": {"image": "goq/goq-sidecar:0.1.0"}},
            "spec.poisonQueue.type 'nosuchsink' is not a poison sink of the sidecar image goq/goq-sidecar:0.1.0",
        ),
    ],
)
def test_a_goqueue_that_would_break_its_pods_or_sidecars_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        validate_custom_object(goqueue(spec), sidecar=OPERATOR)
    assert str(refused.value).startswith("GoQueue 'orders' is invalid: ")
    assert message in str(refused.value)


def test_a_plugin_sink_is_refused_on_the_stock_image_and_a_warning_elsewhere() -> None:
    spec = {"poisonQueue": {"type": "summary", "path": "/x"}, "metrics": {"sinks": [{"type": "statsd"}]}}
    stock = InjectionSettings()  # goq/goq-sidecar:<version>, the operator's default
    with pytest.raises(ConfigError, match="is not a poison sink of the sidecar image goq/goq-sidecar:"):
        validate_custom_object(goqueue(spec), sidecar=stock)
    warnings = validate_custom_object(goqueue(spec), sidecar=OPERATOR)
    assert [w.split(" is not")[0] for w in warnings] == [
        "spec.poisonQueue.type 'summary'",
        "spec.metrics.sinks[0].type 'statsd'",
    ]
    assert (
        "the sidecar image registry.example/goq-sidecar:1 installs it (entry point group 'goq.poison_sinks')"
        in (warnings[0])
    )
    own_image = {**spec, "sidecar": {"image": "registry.example/goq-sidecar-with-plugins:1"}}
    assert len(validate_custom_object(goqueue(own_image), sidecar=stock)) == 2


def test_valid_sidecar_resources_within_their_limits_pass_without_warnings() -> None:
    spec = {"sidecar": {"resources": {"requests": {"cpu": "0.1", "memory": "200Mi"}, "limits": {"memory": "0.25Gi"}}}}
    assert validate_custom_object(goqueue(spec), sidecar=OPERATOR) == []


def test_warnings_reach_the_admission_response_and_are_left_out_when_there_are_none() -> None:
    review = {"request": {"uid": "u", "operation": "CREATE", "object": goqueue({})}}
    outcomes: Counter[str] = Counter()
    warned = review_validation(review, lambda _: ["careful"], outcomes)["response"]
    assert (warned["allowed"], warned["warnings"]) == (True, ["careful"])
    assert "warnings" not in review_validation(review, lambda _: None, outcomes)["response"]
