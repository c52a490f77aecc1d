"""The admission plumbing: certificates, registrations that never block unrelated pods, review answers."""

import base64
import datetime
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography import x509

from goq.errors import ConfigError
from goq.operator import certificates
from goq.operator.admission import review_mutation, review_validation
from goq.operator.registration import mutating_configuration, validating_configuration, webhook_hosts
from goq.operator.settings import OperatorSettings, WebhookSettings

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
IN_CLUSTER = OperatorSettings()
LOCAL = OperatorSettings(webhook=WebhookSettings(url="https://127.0.0.1:9443"))


def test_a_certificate_is_issued_for_the_service_names_and_verifies_against_its_ca() -> None:
    hosts = webhook_hosts(IN_CLUSTER)
    assert hosts[0] == "goq-webhook.goq-system.svc"
    cert = certificates.issue(hosts, NOW)
    leaf = x509.load_pem_x509_certificate(cert.cert)
    ca = x509.load_pem_x509_certificate(cert.ca)
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == set(hosts)
    assert not certificates.needs_renewal(cert, hosts, NOW)


def test_a_certificate_is_renewed_when_missing_near_expiry_or_for_other_hosts() -> None:
    cert = certificates.issue(("127.0.0.1",), NOW)
    assert certificates.needs_renewal(None, ("127.0.0.1",), NOW)
    assert certificates.needs_renewal(cert, ("127.0.0.1",), NOW + datetime.timedelta(days=340))
    assert not certificates.needs_renewal(cert, ("127.0.0.1",), NOW + datetime.timedelta(days=330))
    assert certificates.needs_renewal(cert, ("goq-webhook.goq-system.svc",), NOW)
    assert certificates.needs_renewal(certificates.TlsBundle(b"x", b"y", b"z"), ("127.0.0.1",), NOW)


def test_after_a_renewal_the_ca_bundle_trusts_the_new_and_the_previous_ca_only() -> None:
    first = certificates.issue(("h",), NOW)
    second = certificates.issue(("h",), NOW)
    bundle = certificates.ca_bundle(second, first)
    assert bundle == second.ca + first.ca
    third = certificates.issue(("h",), NOW)
    stored = certificates.TlsBundle(bundle, second.cert, second.key)
    assert certificates.ca_bundle(third, stored) == third.ca + second.ca
    assert certificates.ca_bundle(first, None) == first.ca


def test_pod_injection_is_registered_so_that_a_broken_webhook_never_blocks_pods() -> None:
    hook, *strict = mutating_configuration(IN_CLUSTER, b"CA")["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert [h["failurePolicy"] for h in strict] == ["Fail", "Fail"]  # opt-in only: tests/unit/test_strict_injection.py
    assert hook["timeoutSeconds"] <= 5
    assert hook["sideEffects"] == "None"
    assert hook["rules"][0]["operations"] == ["CREATE"]
    assert hook["rules"][0]["resources"] == ["pods"]
    lenient = {"key": "goq.io/injection", "operator": "NotIn", "values": ["disabled", "required"]}
    assert hook["namespaceSelector"]["matchExpressions"] == [lenient]
    assert hook["objectSelector"]["matchExpressions"] == [lenient]
    assert hook["clientConfig"]["service"] == {
        "name": "goq-webhook",
        "namespace": "goq-system",
        "path": "/mutate-pods",
        "port": 443,
    }
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == b"CA"


def test_creates_must_pass_the_webhook_updates_pass_when_it_is_down_and_only_goq_kinds_are_sent() -> None:
    create, update, _ = validating_configuration(LOCAL, b"CA")["webhooks"]
    assert (create["name"], create["rules"][0]["operations"], create["failurePolicy"]) == (
        "validate.goq.io",
        ["CREATE"],
        "Fail",
    )
    # A label change must not get stuck while the operator is down; rules cannot tell it from a spec change.
    assert (update["name"], update["rules"][0]["operations"], update["failurePolicy"]) == (
        "validate-update.goq.io",
        ["UPDATE"],
        "Ignore",
    )
    for hook in (create, update):
        assert hook["rules"][0]["apiGroups"] == ["goq.io"]
        assert hook["rules"][0]["resources"] == ["goqueues", "retrypolicies"]
        assert hook["clientConfig"]["url"] == "https://127.0.0.1:9443/validate-goq"
    assert webhook_hosts(LOCAL) == ("127.0.0.1",)


def review(obj: Mapping[str, Any], operation: str = "CREATE", old: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "u-1", "namespace": "shop", "operation": operation, "object": obj, "oldObject": old},
    }


def test_a_mutation_answer_carries_the_patch_as_base64_json_and_the_namespace_reaches_the_mutator() -> None:
    seen: list[Mapping[str, Any]] = []

    def mutator(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
        seen.append(pod)
        return [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]

    outcomes: Counter[str] = Counter()
    answer = review_mutation(review({"metadata": {"name": "p"}}), mutator, outcomes)
    response = answer["response"]
    assert (answer["kind"], response["uid"], response["allowed"], response["patchType"]) == (
        "AdmissionReview",
        "u-1",
        True,
        "JSONPatch",
    )
    assert json.loads(base64.b64decode(response["patch"])) == [
        {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}
    ]
    assert seen[0]["metadata"]["namespace"] == "shop"
    assert outcomes == Counter(injected=1)


def test_a_refusal_is_denied_with_the_message_and_a_crash_lets_the_pod_through() -> None:
    def refuse(_: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise ConfigError("identity 'X' must be lower case")

    def crash(_: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise RuntimeError("bug")

    outcomes: Counter[str] = Counter()
    denied = review_mutation(review({}), refuse, outcomes)["response"]
    assert denied["allowed"] is False
    assert denied["status"]["message"] == "identity 'X' must be lower case"
    allowed = review_mutation(review({}), crash, outcomes)["response"]
    assert allowed == {"uid": "u-1", "allowed": True}
    assert outcomes == Counter(refused=1, error=1)


def test_validation_refuses_a_bad_spec_but_lets_spec_free_updates_through() -> None:
    def validator(obj: Mapping[str, Any]) -> None:
        if obj.get("spec", {}).get("bad"):
            raise ConfigError("spec.bad is bad")

    outcomes: Counter[str] = Counter()
    bad = {"spec": {"bad": True}, "metadata": {"annotations": {"a": "1"}}}
    assert review_validation(review(bad), validator, outcomes)["response"]["status"]["message"] == "spec.bad is bad"
    unchanged = review_validation(review(bad, "UPDATE", {"spec": {"bad": True}}), validator, outcomes)
    assert unchanged["response"]["allowed"] is True
    assert outcomes == Counter(refused=1, unchanged=1)


def test_settings_come_from_goq_variables() -> None:
    settings = OperatorSettings.from_env(
        {
            "GOQ_OPERATOR_NAMESPACE": "goq",
            "GOQ_STALE_AFTER": "45s",
            "GOQ_WEBHOOK_URL": "https://127.0.0.1:9443",
            "GOQ_SIDECAR_IMAGE": "me/sidecar:1",
            "GOQ_SIDECAR_REQUESTS": "cpu=10m, memory=32Mi",
            "GOQ_KEY_ROTATION": "720h",
            "GOQ_NATIVE_SIDECAR": "false",
            "GOQ_DEDUPE_WINDOW": "4h",
        }
    )
    assert settings.dedupe_window == 4 * 3600
    assert settings.namespace == "goq"
    assert settings.stale_after == 45.0
    assert settings.webhook.url == "https://127.0.0.1:9443"
    assert settings.sidecar.image == "me/sidecar:1"
    assert settings.sidecar.requests == {"cpu": "10m", "memory": "32Mi"}
    assert settings.keys.rotation == 720 * 3600
    assert OperatorSettings.from_env({}) == OperatorSettings()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GOQ_STALE_AFTER": "soon"}, "GOQ_STALE_AFTER 'soon' is not a duration"),
        ({"GOQ_DEDUPE_WINDOW": "2 hours"}, "GOQ_DEDUPE_WINDOW '2 hours' is not a duration"),
        ({"GOQ_NATIVE_SIDECAR": "maybe"}, "GOQ_NATIVE_SIDECAR must be auto, true or false"),
        ({"GOQ_WEBHOOK_TIMEOUT": "60"}, "GOQ_WEBHOOK_TIMEOUT must be from 1 to 30 seconds"),
        ({"GOQ_SIDECAR_LIMITS": "memory"}, "GOQ_SIDECAR_LIMITS must look like"),
        ({"GOQ_OPERATOR_NAMESPACE": "GOQ"}, "GOQ_OPERATOR_NAMESPACE 'GOQ' must be lower case"),
    ],
)
def test_a_bad_setting_is_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OperatorSettings.from_env(env)
