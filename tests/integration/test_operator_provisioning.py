"""The operator provides what the sidecars of a namespace need: the MongoDB Secret and the RoleBinding.

A real operator process against the real kube-apiserver, running as its ServiceAccount with exactly the RBAC
of manifests/rbac/operator.yaml (so the RBAC escalation rules for binding a ClusterRole apply for real).
"""

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from .operator_kube import (
    OperatorProcess,
    apply_crds,
    apply_rbac,
    eventually,
    namespace,
    operator_namespace,
    operator_process,
    simple_pod,
)

GROUP, VERSION = "goq.io", "v1alpha1"
SECRET = "goq-mongodb"
SOURCE_URI = "mongodb://mongo-a.example:27017/?replicaSet=rs0"
MANAGED = {"app.kubernetes.io/managed-by": "goq-operator"}


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def write_source(api: k8s.ApiClient, ns: str, uri: str) -> None:
    core = k8s.CoreV1Api(api)
    body = {"metadata": {"name": SECRET, "namespace": ns}, "data": {"uri": encoded(uri)}}
    try:
        await core.create_namespaced_secret(ns, body)
    except ApiException as exc:
        if exc.status != 409:
            raise
        await core.replace_namespaced_secret(SECRET, ns, body)


@pytest.fixture(scope="module")
async def operator(kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OperatorProcess]:
    await apply_crds(kube_api)
    await apply_rbac(kube_api, "sidecar.yaml")
    workdir = tmp_path_factory.mktemp("provisioning")
    env = {"GOQ_MONGODB_SECRET": SECRET, "GOQ_MONGODB_SOURCE_SECRET": SECRET}
    async with operator_namespace(kube_api, workdir) as (ns, kubeconfig):
        await write_source(kube_api, ns, SOURCE_URI)
        async with operator_process(kube_api, ns, kubeconfig, workdir, extra_env=env) as handle:
            yield handle


@pytest.fixture
async def ns(kube_api: k8s.ApiClient, operator: OperatorProcess) -> AsyncIterator[str]:
    async with namespace(kube_api, "prov") as name:
        yield name


async def create_goqueue(api: k8s.ApiClient, ns: str, name: str) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": name}, "spec": {}}
    await k8s.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", body)


async def provisioned(api: k8s.ApiClient, ns: str, name: str) -> dict[str, Any]:
    """The GoQueue's condition Provisioned ({} while there is none, or no GoQueue)."""
    try:
        found = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", name)
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    conditions = (found.get("status") or {}).get("conditions") or []
    return next((dict(c) for c in conditions if c["type"] == "Provisioned"), {})


async def read_secret(api: k8s.ApiClient, ns: str) -> k8s.V1Secret | None:
    with contextlib.suppress(ApiException):
        return await k8s.CoreV1Api(api).read_namespaced_secret(SECRET, ns)
    return None


async def read_binding(api: k8s.ApiClient, ns: str) -> k8s.V1RoleBinding | None:
    with contextlib.suppress(ApiException):
        return await k8s.RbacAuthorizationV1Api(api).read_namespaced_role_binding("goq-sidecar", ns)
    return None


async def uri_in(api: k8s.ApiClient, ns: str) -> str | None:
    secret = await read_secret(api, ns)
    return base64.b64decode(secret.data["uri"]).decode() if secret and secret.data else None


async def service_account(api: k8s.ApiClient, ns: str, name: str) -> None:
    """A ServiceAccount with its token (pods may run as it)."""
    core = k8s.CoreV1Api(api)
    await core.create_namespaced_service_account(ns, {"metadata": {"name": name}})

    async def token() -> bool:
        return bool((await core.read_namespaced_service_account(name, ns)).secrets)

    assert await eventually(token), f"ServiceAccount {name} got no token"


async def may_read_goqueues(api: k8s.ApiClient, ns: str, account: str) -> bool:
    """Whether ServiceAccount ``account`` may do what every sidecar does first: read its GoQueue."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{ns}:{account}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}"],
            "resourceAttributes": {"group": GROUP, "resource": "goqueues", "verb": "get", "namespace": ns},
        },
    }
    answer = await k8s.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(answer.status.allowed)


async def test_a_new_namespace_with_a_goqueue_gets_the_secret_and_its_pods_account_is_bound(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    await create_goqueue(kube_api, ns, "orders")

    assert await eventually(lambda: uri_in(kube_api, ns)) == SOURCE_URI
    secret = await read_secret(kube_api, ns)
    assert secret is not None
    assert secret.metadata.labels.items() >= MANAGED.items()
    assert set(secret.data) == {"uri"}, "only the uri is copied, nothing else of the source"
    assert not await may_read_goqueues(kube_api, ns, "default"), "no pod yet: nobody is bound"

    await k8s.CoreV1Api(kube_api).create_namespaced_pod(ns, simple_pod("orders-1", {"goq.io/id": "orders"}))

    binding = await eventually(lambda: read_binding(kube_api, ns))
    assert binding is not None, "no RoleBinding goq-sidecar"
    assert (binding.role_ref.kind, binding.role_ref.name) == ("ClusterRole", "goq-sidecar")
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", "default", ns)]
    assert binding.metadata.labels.items() >= MANAGED.items()
    assert await eventually(lambda: may_read_goqueues(kube_api, ns, "default"))  # the authorizer's cache lags a little

    async def true() -> dict[str, Any]:
        found = await provisioned(kube_api, ns, "orders")
        return found if found.get("status") == "True" else {}

    assert (await eventually(true)).get("reason") == "Provisioned"


async def test_an_annotated_pod_in_a_namespace_without_goqueue_gets_the_secret_and_only_its_account_bound(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    await service_account(kube_api, ns, "worker")
    pod = simple_pod("billing-1", {"goq.io/id": "billing"})
    pod["spec"]["serviceAccountName"] = "worker"
    await k8s.CoreV1Api(kube_api).create_namespaced_pod(ns, pod)

    assert await eventually(lambda: uri_in(kube_api, ns)) == SOURCE_URI
    binding = await eventually(lambda: read_binding(kube_api, ns))
    assert binding is not None, "no RoleBinding goq-sidecar"
    assert [s.name for s in binding.subjects] == ["worker"]
    assert await eventually(lambda: may_read_goqueues(kube_api, ns, "worker"))
    assert not await may_read_goqueues(kube_api, ns, "default"), "an account no GoQ pod runs as stays unbound"

    async def true() -> bool:
        return (await provisioned(kube_api, ns, "billing")).get("status") == "True"

    assert await eventually(true), "the default GoQueue made for the pod never said Provisioned"


async def test_a_secret_the_user_made_is_never_overwritten_and_the_difference_is_reported(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    own = "mongodb://mine.example:27017/?replicaSet=x"
    body = {"metadata": {"name": SECRET}, "data": {"uri": encoded(own)}}
    await k8s.CoreV1Api(kube_api).create_namespaced_secret(ns, body)
    await create_goqueue(kube_api, ns, "orders")

    async def failed() -> dict[str, Any]:
        found = await provisioned(kube_api, ns, "orders")
        return found if found.get("status") == "False" else {}

    condition = await eventually(failed)
    assert condition.get("reason") == "ProvisioningFailed", condition
    assert f"Secret {ns}/{SECRET} was not made by GoQ" in condition["message"]
    assert "delete it to let the operator provide it" in condition["message"]
    events = await k8s.CoreV1Api(kube_api).list_namespaced_event(ns, field_selector="involvedObject.name=orders")
    warnings = [e for e in events.items if e.reason == "ProvisioningFailed"]
    assert [e.type for e in warnings] == ["Warning"], "one Warning, not one per sweep"
    assert await uri_in(kube_api, ns) == own

    await k8s.CoreV1Api(kube_api).delete_namespaced_secret(SECRET, ns)
    assert await eventually(lambda: uri_in(kube_api, ns)) == SOURCE_URI, "deleted: now the operator provides it"

    async def true() -> bool:
        return (await provisioned(kube_api, ns, "orders")).get("status") == "True"

    assert await eventually(true), "the condition never turned back to True"


async def test_a_changed_source_reaches_the_copy_in_every_namespace(
    kube_api: k8s.ApiClient, operator: OperatorProcess
) -> None:
    async with namespace(kube_api, "prov-a") as first, namespace(kube_api, "prov-b") as second:
        await create_goqueue(kube_api, first, "orders")
        await create_goqueue(kube_api, second, "billing")
        for ns in (first, second):

            async def copied(ns: str = ns) -> str | None:
                return await uri_in(kube_api, ns)

            assert await eventually(copied) == SOURCE_URI
        moved = "mongodb://mongo-b.example:27017/?replicaSet=rs1"
        await write_source(kube_api, operator.namespace, moved)
        try:
            for ns in (first, second):

                async def follows(ns: str = ns) -> bool:
                    return await uri_in(kube_api, ns) == moved

                assert await eventually(follows), f"{ns} kept the old uri"
        finally:
            await write_source(kube_api, operator.namespace, SOURCE_URI)


async def test_without_its_source_the_operator_reports_the_missing_secret_and_provides_it_once_it_is_back(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    core = k8s.CoreV1Api(kube_api)
    await core.delete_namespaced_secret(SECRET, operator.namespace)
    try:
        await create_goqueue(kube_api, ns, "orders")

        async def failed() -> dict[str, Any]:
            found = await provisioned(kube_api, ns, "orders")
            return found if found.get("status") == "False" else {}

        condition = await eventually(failed)
        assert f"Secret {ns}/{SECRET} is missing, so the sidecars here cannot start" in condition.get("message", "")
        assert (
            f"source Secret {operator.namespace}/{SECRET} (GOQ_MONGODB_SOURCE_SECRET) does not exist"
            in (condition["message"])
        )
        assert await read_secret(kube_api, ns) is None
    finally:
        await write_source(kube_api, operator.namespace, SOURCE_URI)
    assert await eventually(lambda: uri_in(kube_api, ns)) == SOURCE_URI

    async def true() -> bool:
        return (await provisioned(kube_api, ns, "orders")).get("status") == "True"

    assert await eventually(true)


async def test_when_rbac_forbids_the_binding_the_goqueue_and_the_pod_say_so_until_it_is_allowed(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    role = await rbac.read_cluster_role("goq-operator")
    role.rules = [r for r in role.rules if "bind" not in r.verbs]
    await rbac.replace_cluster_role("goq-operator", role)
    try:
        await k8s.CoreV1Api(kube_api).create_namespaced_pod(ns, simple_pod("orders-1", {"goq.io/id": "orders"}))

        async def failed() -> dict[str, Any]:
            found = await provisioned(kube_api, ns, "orders")
            return found if found.get("status") == "False" else {}

        condition = await eventually(failed)
        assert f"the operator may not write RoleBinding {ns}/goq-sidecar" in condition.get("message", ""), condition
        assert "attempting to grant RBAC permissions not currently held" in condition["message"]
        events = await k8s.CoreV1Api(kube_api).list_namespaced_event(ns)
        assert {(e.involved_object.kind, e.reason) for e in events.items} >= {
            ("Pod", "ProvisioningFailed"),
            ("GoQueue", "ProvisioningFailed"),
        }
        assert await uri_in(kube_api, ns) == SOURCE_URI, "what it may do, it does"
    finally:
        await apply_rbac(kube_api, "operator.yaml", operator.namespace)
    assert await eventually(lambda: read_binding(kube_api, ns)), "allowed again, yet no RoleBinding"

    async def true() -> bool:
        return (await provisioned(kube_api, ns, "orders")).get("status") == "True"

    assert await eventually(true)
