"""The pod mutation: what it adds, what it leaves alone, and what it refuses. Table-driven, no server."""

import copy
from typing import Any

import jsonpatch
import pytest

from goq import names
from goq.sidecar.adapters.peer_tls import CA_FILE, CERT_FILE, KEY_FILE
from goq.webhook import InjectionRefusedError, InjectionSettings, injection_patch, is_injected, supports_native_sidecars
from goq.webhook.settings import (
    CONTAINER_NAME,
    KEYS_MOUNT_PATH,
    KEYS_VOLUME,
    SPILL_MOUNT_PATH,
    SPILL_VOLUME,
    TLS_FILES,
    TLS_MOUNT_PATH,
    TLS_VOLUME,
)

SETTINGS = InjectionSettings(image="example/goq-sidecar:1.2.3", version="1.2.3")
NATIVE = InjectionSettings(image="example/goq-sidecar:1.2.3", version="1.2.3", native_sidecar=True)


def pod(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "app-1", "namespace": "shop"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "shop/app:1"}], **spec},
    }


def applied(original: dict[str, Any], settings: InjectionSettings = SETTINGS) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(original, injection_patch(original, settings))
    return result


def sidecar_of(p: dict[str, Any]) -> dict[str, Any]:
    containers = [*p["spec"].get("initContainers", []), *p["spec"]["containers"]]
    [found] = [c for c in containers if c["name"] == CONTAINER_NAME]
    return found


@pytest.mark.parametrize(
    "untouched",
    [
        pod(),
        pod({"other.io/thing": "x"}),
        pod({names.ANNOTATION_ID: "orders", names.ANNOTATION_INJECTED: "0.9.0"}),
        {**pod({names.ANNOTATION_ID: "orders"}), "spec": {"containers": [{"name": CONTAINER_NAME, "image": "mine"}]}},
    ],
    ids=["no-annotations", "other-annotations", "already-injected", "user-brought-a-goq-sidecar"],
)
def test_pods_that_did_not_opt_in_or_have_it_already_get_an_empty_patch(untouched: dict[str, Any]) -> None:
    assert injection_patch(untouched, SETTINGS) == []


def test_an_opted_in_pod_gets_label_annotation_sidecar_key_volume_and_spill_volume() -> None:
    result = applied(pod({names.ANNOTATION_ID: "orders"}))
    assert result["metadata"]["labels"] == {names.LABEL_ID: "orders"}
    assert result["metadata"]["annotations"] == {
        names.ANNOTATION_ID: "orders",
        names.ANNOTATION_INJECTED: "1.2.3",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "7703",
        "prometheus.io/path": "/metrics",
    }
    assert [c["name"] for c in result["spec"]["containers"]] == ["app", CONTAINER_NAME]
    assert "initContainers" not in result["spec"]
    assert result["spec"]["volumes"] == [
        {"name": KEYS_VOLUME, "secret": {"secretName": "goq-hmac-keys", "defaultMode": 0o440}},
        {"name": SPILL_VOLUME, "emptyDir": {"sizeLimit": "4Gi"}},
        {
            "name": TLS_VOLUME,
            "secret": {
                "secretName": "goq-identity-tls",
                "items": [
                    {"key": "orders.tls.crt", "path": "tls.crt"},
                    {"key": "orders.tls.key", "path": "tls.key"},
                    {"key": "ca.crt", "path": "ca.crt"},
                ],
                "defaultMode": 0o440,
            },
        },
    ]


def test_only_the_pods_own_identity_keys_of_the_namespace_certificate_secret_are_mounted() -> None:
    [volume] = [v for v in applied(pod({names.ANNOTATION_ID: "billing"}))["spec"]["volumes"] if v["name"] == TLS_VOLUME]
    items = {i["path"]: i["key"] for i in volume["secret"]["items"]}
    assert items == {"tls.crt": "billing.tls.crt", "tls.key": "billing.tls.key", "ca.crt": "ca.crt"}
    assert (CERT_FILE, KEY_FILE, CA_FILE) == TLS_FILES, "the files mounted are those the sidecar reads"
    assert not volume["secret"].get("optional"), "an optional volume would start the sidecar without TLS"


def test_with_peer_tls_off_no_certificate_is_mounted_and_the_peer_port_is_plaintext() -> None:
    plaintext = InjectionSettings(image="example/goq-sidecar:1.2.3", version="1.2.3", peer_tls=False)
    result = applied(pod({names.ANNOTATION_ID: "orders"}), plaintext)
    assert [v["name"] for v in result["spec"]["volumes"]] == [KEYS_VOLUME, SPILL_VOLUME]
    sidecar = sidecar_of(result)
    assert "GOQ_TLS_DIR" not in {e["name"] for e in sidecar["env"]}
    assert TLS_VOLUME not in {m["name"] for m in sidecar["volumeMounts"]}


def test_the_sidecar_container_carries_identity_downward_api_ports_probes_and_lockdown() -> None:
    sidecar = sidecar_of(applied(pod({names.ANNOTATION_ID: "orders"})))
    assert sidecar["image"] == "example/goq-sidecar:1.2.3"
    env = {e["name"]: e.get("value") or e["valueFrom"]["fieldRef"]["fieldPath"] for e in sidecar["env"]}
    assert env == {
        "GOQ_IDENTITY": "orders",
        "GOQ_NAMESPACE": "metadata.namespace",
        "GOQ_POD_NAME": "metadata.name",
        "GOQ_POD_IP": "status.podIP",
        "GOQ_KEYS_DIR": KEYS_MOUNT_PATH,
        "GOQ_SPILL_DIR": SPILL_MOUNT_PATH,
        "GOQ_DEDUPE_WINDOW": "2h",
        "GOQ_TLS_DIR": TLS_MOUNT_PATH,
    }
    assert {p["name"]: p["containerPort"] for p in sidecar["ports"]} == {
        "goq-rest": 7700,
        "goq-grpc": 7701,
        "goq-peer": 7702,
        "goq-health": 7703,
    }
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 7703}
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 7703}
    assert sidecar["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 7703}
    security = sidecar["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert sidecar["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
    assert sidecar["volumeMounts"] == [
        {"name": KEYS_VOLUME, "mountPath": KEYS_MOUNT_PATH, "readOnly": True},
        {"name": SPILL_VOLUME, "mountPath": SPILL_MOUNT_PATH},  # the root filesystem is read-only
        {"name": TLS_VOLUME, "mountPath": TLS_MOUNT_PATH, "readOnly": True},  # the identity's certificate
    ]
    assert "restartPolicy" not in sidecar


def test_the_mongodb_secret_is_referenced_not_copied() -> None:
    settings = InjectionSettings(mongodb_secret="goq-mongodb")
    sidecar = sidecar_of(applied(pod({names.ANNOTATION_ID: "orders"}), settings))
    [uri] = [e for e in sidecar["env"] if e["name"] == "GOQ_MONGODB_URI"]
    assert uri["valueFrom"] == {"secretKeyRef": {"name": "goq-mongodb", "key": "uri"}}


def test_applying_the_patch_twice_changes_nothing() -> None:
    once = applied(pod({names.ANNOTATION_ID: "orders"}))
    assert is_injected(once)
    assert injection_patch(once, SETTINGS) == []
    assert applied(copy.deepcopy(once)) == once


@pytest.mark.parametrize(
    ("given", "check"),
    [
        (
            pod({names.ANNOTATION_ID: "orders"})
            | {"metadata": {"annotations": {names.ANNOTATION_ID: "orders"}, "labels": {"app": "shop"}}},
            lambda p: p["metadata"]["labels"] == {"app": "shop", names.LABEL_ID: "orders"},
        ),
        (
            pod({names.ANNOTATION_ID: "orders"}, volumes=[{"name": KEYS_VOLUME, "emptyDir": {}}]),
            lambda p: p["spec"]["volumes"][0] == {"name": KEYS_VOLUME, "emptyDir": {}},
        ),
        (
            pod({names.ANNOTATION_ID: "orders"}, volumes=[{"name": "data", "emptyDir": {}}]),
            lambda p: [v["name"] for v in p["spec"]["volumes"]] == ["data", KEYS_VOLUME, SPILL_VOLUME, TLS_VOLUME],
        ),
        (
            pod({names.ANNOTATION_ID: "orders"})
            | {"metadata": {"annotations": {names.ANNOTATION_ID: "orders"}, "labels": {names.LABEL_ID: "orders"}}},
            lambda p: p["metadata"]["labels"] == {names.LABEL_ID: "orders"},
        ),
    ],
    ids=["other-labels-kept", "user-volume-of-that-name-kept", "other-volumes-kept", "matching-label-kept"],
)
def test_what_the_user_set_is_never_overridden(given: dict[str, Any], check: Any) -> None:
    result = applied(given)
    assert check(result)
    assert result["spec"]["containers"][0] == {"name": "app", "image": "shop/app:1"}


def test_a_native_sidecar_is_the_first_init_container_and_restarts_always() -> None:
    result = applied(pod({names.ANNOTATION_ID: "orders"}, initContainers=[{"name": "migrate", "image": "m"}]), NATIVE)
    assert [c["name"] for c in result["spec"]["initContainers"]] == [CONTAINER_NAME, "migrate"]
    assert result["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    assert [c["name"] for c in result["spec"]["containers"]] == ["app"]


def test_a_native_sidecar_creates_the_init_container_list_when_missing() -> None:
    result = applied(pod({names.ANNOTATION_ID: "orders"}), NATIVE)
    assert [c["name"] for c in result["spec"]["initContainers"]] == [CONTAINER_NAME]


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        ("Orders", "must be lower case"),
        ("orders_v2", "may contain only lower-case letters, digits and '-'"),
        ("", "must not be empty"),
        ("o" * 60, "is 60 characters long; at most 59 are allowed"),
        ("-orders", "must start and end with a letter or digit"),
    ],
)
def test_an_invalid_identity_is_refused_with_what_is_wrong(identity: str, message: str) -> None:
    with pytest.raises(InjectionRefusedError, match=r"GoQ cannot inject its sidecar: annotation goq\.io/id") as refused:
        injection_patch(pod({names.ANNOTATION_ID: identity}), SETTINGS)
    assert message in str(refused.value)


def test_a_label_that_contradicts_the_annotation_is_refused() -> None:
    given = pod()
    given["metadata"] |= {"annotations": {names.ANNOTATION_ID: "orders"}, "labels": {names.LABEL_ID: "billing"}}
    with pytest.raises(InjectionRefusedError, match=r"contradicts annotation goq\.io/id='orders'"):
        injection_patch(given, SETTINGS)


def test_keys_with_slashes_are_escaped_as_json_pointers() -> None:
    ops = injection_patch(
        pod({names.ANNOTATION_ID: "orders"})
        | {"metadata": {"annotations": {names.ANNOTATION_ID: "orders"}, "labels": {}}},
        SETTINGS,
    )
    paths = [op["path"] for op in ops]
    assert "/metadata/labels/goq.io~1id" in paths
    assert "/metadata/annotations/goq.io~1injected" in paths


@pytest.mark.parametrize(
    ("major", "minor", "native"),
    [
        ("1", "20", False),
        ("1", "28", False),
        ("1", "29", True),
        ("1", "30+", True),
        ("2", "0", True),
        ("1", "x", False),
    ],
)
def test_native_sidecars_are_used_from_kubernetes_1_29(major: str, minor: str, native: bool) -> None:
    assert supports_native_sidecars(major, minor) is native


def test_a_pod_with_prometheus_annotations_of_its_own_keeps_them_and_gets_none_of_ours() -> None:
    """The convention names one target per pod: the application's stays (a PodMonitor reaches the sidecar)."""
    own = {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}
    result = applied(pod({names.ANNOTATION_ID: "orders", **own}))
    assert result["metadata"]["annotations"] == {
        names.ANNOTATION_ID: "orders",
        names.ANNOTATION_INJECTED: "1.2.3",
        **own,
    }


def test_an_injected_pod_announces_the_sidecars_metrics_port_for_scraping() -> None:
    result = applied(pod({names.ANNOTATION_ID: "orders"}), NATIVE)
    annotations = result["metadata"]["annotations"]
    port = int(annotations["prometheus.io/port"])
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert {p["name"]: p["containerPort"] for p in sidecar_of(result)["ports"]}["goq-health"] == port
