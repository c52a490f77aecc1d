"""What the operator decides for a namespace's MongoDB Secret and sidecar RoleBinding (pure parts)."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from goq.operator.provisioning import Outcome, Source, binding_step, provisioned_condition, secret_step
from goq.operator.settings import OperatorSettings

MANAGED = {"app.kubernetes.io/managed-by": "goq-operator", "app.kubernetes.io/part-of": "goq"}
SOURCE = Source("dXJpLWE=")
NO_SOURCE = Source(None, "the operator's source Secret goq-system/goq-mongodb does not exist")


def secret(uri: str | None, labels: dict[str, str] | None = None, **extra: str) -> dict[str, Any]:
    data = ({"uri": uri} if uri is not None else {}) | extra
    return {"metadata": {"name": "goq-mongodb", "resourceVersion": "7", "labels": labels}, "data": data}


def binding(subjects: list[dict[str, str]], labels: dict[str, str] | None = None, role: str = "goq-sidecar") -> Any:
    return {
        "metadata": {"name": "goq-sidecar", "resourceVersion": "9", "labels": labels},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def account(name: str, ns: str = "shop") -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": ns}


def test_a_missing_secret_is_created_with_only_the_uri_and_the_goq_labels() -> None:
    step = secret_step("shop", "goq-mongodb", None, SOURCE)
    assert step.problem is None
    assert step.write is not None
    assert step.write["data"] == {"uri": "dXJpLWE="}
    assert step.write["metadata"]["labels"] == MANAGED
    assert "resourceVersion" not in step.write["metadata"]


@pytest.mark.parametrize(
    ("found", "writes"),
    [
        (secret("dXJpLWE=", MANAGED), False),
        (secret("b2xk", MANAGED), True),
        (secret("dXJpLWE=", MANAGED, password="eA=="), True),
    ],
    ids=["in-line", "source-changed", "stray-key"],
)
def test_a_managed_secret_follows_the_source(found: dict[str, Any], writes: bool) -> None:
    step = secret_step("shop", "goq-mongodb", found, SOURCE)
    assert step.problem is None
    assert (step.write is not None) == writes
    if step.write:
        assert step.write["data"] == {"uri": "dXJpLWE="}
        assert step.write["metadata"]["resourceVersion"] == "7", "a guarded replace, never a blind one"


@pytest.mark.parametrize(
    ("found", "source", "problem"),
    [
        (secret("bWluZQ=="), SOURCE, "was not made by GoQ"),
        (secret(None, password="eA=="), SOURCE, "has no key 'uri'"),
        (secret(None), NO_SOURCE, "has no key 'uri'"),
        (None, NO_SOURCE, "is missing, so the sidecars here cannot start: the operator's source"),
        (secret("b2xk", MANAGED), NO_SOURCE, "is kept as it was, not updated"),
    ],
    ids=["user-made-differs", "user-made-without-uri", "user-made-without-uri-no-source", "no-source", "source-gone"],
)
def test_what_cannot_be_provided_is_a_problem_and_nothing_is_written(
    found: dict[str, Any] | None, source: Source, problem: str
) -> None:
    step = secret_step("shop", "goq-mongodb", found, source)
    assert step.write is None
    assert step.problem is not None
    assert problem in step.problem


@pytest.mark.parametrize("source", [SOURCE, NO_SOURCE], ids=["same-uri", "no-source"])
def test_a_user_made_secret_with_a_uri_that_serves_is_left_alone_silently(source: Source) -> None:
    step = secret_step("shop", "goq-mongodb", secret("dXJpLWE="), source)
    assert step.write is None
    assert step.problem is None


def test_no_binding_is_made_before_a_pod_shows_which_account_to_bind() -> None:
    step = binding_step("shop", "goq-sidecar", None, [])
    assert step.write is None
    assert step.problem is None


def test_a_binding_is_made_for_the_accounts_pods_run_as_only() -> None:
    step = binding_step("shop", "goq-sidecar", None, ["worker", "default"])
    assert step.write is not None
    assert not step.recreate
    assert step.write["subjects"] == [account("default"), account("worker")]
    assert step.write["roleRef"]["name"] == "goq-sidecar"
    assert step.write["metadata"]["labels"] == MANAGED


def test_a_managed_binding_only_ever_gains_subjects() -> None:
    found = binding([account("old")], MANAGED)
    step = binding_step("shop", "goq-sidecar", found, ["new"])
    assert step.write is not None
    assert step.write["subjects"] == [account("old"), account("new")]
    assert step.write["metadata"]["resourceVersion"] == "9"
    assert binding_step("shop", "goq-sidecar", found, ["old"]).write is None


def test_a_managed_binding_to_another_role_is_recreated_since_role_ref_never_changes_in_place() -> None:
    step = binding_step("shop", "goq-sidecar", binding([account("a")], MANAGED, role="old-role"), ["a"])
    assert step.recreate
    assert step.write is not None
    assert step.write["roleRef"]["name"] == "goq-sidecar"
    assert "resourceVersion" not in step.write["metadata"]


@pytest.mark.parametrize(
    "subjects",
    [
        [account("default"), account("worker")],
        [{"kind": "Group", "name": "system:serviceaccounts:shop"}],
        [{"kind": "Group", "name": "system:serviceaccounts"}],
    ],
    ids=["each-account", "namespace-group", "all-accounts-group"],
)
def test_a_user_made_binding_that_covers_the_accounts_is_left_alone(subjects: list[dict[str, str]]) -> None:
    step = binding_step("shop", "goq-sidecar", binding(subjects), ["default", "worker"])
    assert step.write is None
    assert step.problem is None


@pytest.mark.parametrize(
    ("found", "problem"),
    [
        (binding([account("default")]), "does not bind ServiceAccount worker"),
        (binding([account("worker", ns="other")]), "does not bind ServiceAccount default, worker"),
        (binding([account("default"), account("worker")], role="admin"), "binds ClusterRole admin, not"),
    ],
    ids=["account-missing", "account-of-another-namespace", "another-role"],
)
def test_a_user_made_binding_that_falls_short_is_reported_never_changed(found: dict[str, Any], problem: str) -> None:
    step = binding_step("shop", "goq-sidecar", found, ["default", "worker"])
    assert step.write is None
    assert step.problem is not None
    assert problem in step.problem


def test_the_condition_is_false_with_every_problem_and_true_with_what_is_provided() -> None:
    failed = provisioned_condition(Outcome(problems=["a", "b"]), "x in place")
    assert (failed.status, failed.reason, failed.message) == (False, "ProvisioningFailed", "a; b")
    fine = provisioned_condition(Outcome(done=["created"]), "x in place")
    assert (fine.status, fine.reason, fine.message) == (True, "Provisioned", "x in place")


def test_settings_name_the_source_and_an_empty_cluster_role_turns_the_binding_off() -> None:
    settings = OperatorSettings.from_env({"GOQ_MONGODB_SOURCE_SECRET": "mongo-admin", "GOQ_SIDECAR_CLUSTER_ROLE": ""})
    assert settings.provisioning.mongodb_source == "mongo-admin"
    assert settings.provisioning.sidecar_role is None
    defaults = OperatorSettings.from_env({})
    assert (defaults.provisioning.mongodb_source, defaults.provisioning.sidecar_role) == (None, "goq-sidecar")


def test_the_install_provides_the_source_and_lets_the_operator_bind_only_the_sidecar_role() -> None:
    root = Path(__file__).resolve().parents[2] / "manifests"
    docs = [
        d
        for f in ("operator.yaml", "demo-mongodb/mongodb.yaml", "rbac/operator.yaml")
        for d in yaml.safe_load_all((root / f).read_text())
    ]
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    [source] = [d for d in docs if d["kind"] == "Secret"]
    assert (source["metadata"]["namespace"], source["metadata"]["name"]) == (
        "goq-system",
        env["GOQ_MONGODB_SOURCE_SECRET"],
    )
    assert "uri" in source["stringData"]
    [role] = [d for d in docs if d["kind"] == "ClusterRole"]
    bind = [r for r in role["rules"] if "bind" in r["verbs"]]
    assert bind == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "resourceNames": ["goq-sidecar"],
            "verbs": ["bind"],
        }
    ]
    secrets = [r for r in role["rules"] if r["resources"] == ["secrets"] and "get" in r["verbs"]]
    assert env["GOQ_MONGODB_SECRET"] in secrets[0]["resourceNames"]
