"""The sidecar's Kubernetes side against the real API server, with the sidecar's real RBAC."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.errors import PermanentError
from goq.queue_spec import GoQueueSpec, Overflow
from goq.queue_status import lease_name
from goq.retry import RetryPolicy
from goq.sidecar.adapters.kube import PodFigures, QueueSettings, QueueSettingsWatcher, StatusReporter, heartbeat
from goq.sidecar.adapters.kube.api import KubeApi

from .operator_kube import ROOT, apply_crds, eventually, namespace

GROUP, VERSION = "goq.io", "v1alpha1"


@pytest.fixture(scope="module")
async def sidecar_role(kube_api: k8s.ApiClient) -> None:
    await apply_crds(kube_api)
    role = yaml.safe_load((ROOT / "manifests" / "rbac" / "sidecar.yaml").read_text())
    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    try:
        await rbac.create_cluster_role(role)
    except ApiException as exc:
        if exc.status != 409:
            raise
        await rbac.replace_cluster_role(role["metadata"]["name"], role)


@pytest.fixture
async def ns(kube_api: k8s.ApiClient, sidecar_role: None) -> AsyncIterator[str]:
    async with namespace(kube_api, "sc") as name:
        yield name


@contextlib.asynccontextmanager
async def as_app_service_account(
    api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> AsyncIterator[tuple[k8s.ApiClient, KubeApi]]:
    """Clients (a generic one, and the sidecar's own) that impersonate ServiceAccount ``app``, bound to
    ClusterRole goq-sidecar as the docs say."""
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    await core.create_namespaced_service_account(ns, {"metadata": {"name": "app"}})
    await rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": "goq-sidecar"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "goq-sidecar"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}],
        },
    )
    headers = {"Impersonate-User": f"system:serviceaccount:{ns}:app", "Impersonate-Group": "system:serviceaccounts"}
    async with k8s.ApiClient(api.configuration) as impersonating, sidecar_kube.with_headers(headers) as sidecar:
        for name, value in headers.items():
            impersonating.set_default_header(name, value)
        yield impersonating, sidecar


async def create(api: k8s.ApiClient, ns: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    plural = {"GoQueue": "goqueues", "RetryPolicy": "retrypolicies"}[kind]
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    await k8s.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, plural, body)


async def status_of(api: k8s.ApiClient, ns: str, name: str) -> dict[str, Any]:
    found = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", name)
    return dict(found.get("status") or {})


async def lease_of(api: k8s.ApiClient, ns: str, pod: str, identity: str = "orders") -> dict[str, Any] | None:
    try:
        found = await k8s.CoordinationV1Api(api).read_namespaced_lease(lease_name(identity, pod), ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    lease: dict[str, Any] = api.sanitize_for_serialization(found)
    return lease


async def figures_of(api: k8s.ApiClient, ns: str, pod: str) -> PodFigures | None:
    lease = await lease_of(api, ns, pod)
    return PodFigures.from_annotations(lease["metadata"]["annotations"]) if lease else None


async def test_the_sidecar_account_can_heartbeat_but_not_read_secrets_or_change_specs(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> None:
    await create(kube_api, ns, "GoQueue", "orders", {})
    async with as_app_service_account(kube_api, ns, sidecar_kube) as (sidecar, own):
        await StatusReporter(own, ns, "orders").report("orders-1", PodFigures(ready=True, delivered=3))
        lease = await lease_of(kube_api, ns, "orders-1")
        assert lease is not None
        assert lease["metadata"]["annotations"]["goq.io/delivered"] == "3"
        assert lease["spec"]["holderIdentity"] == "orders-1"
        assert lease["metadata"]["ownerReferences"][0]["kind"] == "GoQueue"
        with pytest.raises(ApiException) as status:
            await k8s.CustomObjectsApi(sidecar).patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                ns,
                "goqueues",
                "orders",
                {"status": {"delivered": 1}},
                _content_type="application/merge-patch+json",
            )
        assert status.value.status == 403

        with pytest.raises(ApiException) as secrets:
            await k8s.CoreV1Api(sidecar).list_namespaced_secret(ns)
        assert secrets.value.status == 403
        with pytest.raises(ApiException) as secret:
            await k8s.CoreV1Api(sidecar).read_namespaced_secret("goq-hmac-keys", ns)
        assert secret.value.status == 403
        with pytest.raises(ApiException) as spec:
            await k8s.CustomObjectsApi(sidecar).patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "goqueues",
                "orders",
                {"spec": {"overflow": "reject"}},
                _content_type="application/merge-patch+json",
            )
        assert spec.value.status == 403
        with pytest.raises(ApiException) as policy:
            await create(sidecar, ns, "RetryPolicy", "mine", {})
        assert policy.value.status == 403


async def test_without_the_role_binding_a_heartbeat_fails_permanently_with_what_to_do(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> None:
    await create(kube_api, ns, "GoQueue", "orders", {})
    async with sidecar_kube.with_headers({"Impersonate-User": f"system:serviceaccount:{ns}:default"}) as stranger:
        with pytest.raises(PermanentError, match="may not write Leases; bind ClusterRole goq-sidecar"):
            await StatusReporter(stranger, ns, "orders").report("p", PodFigures(ready=True))


async def test_concurrent_heartbeats_of_many_pods_each_land_in_their_own_lease(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> None:
    await create(kube_api, ns, "GoQueue", "orders", {})
    reporter = StatusReporter(sidecar_kube, ns, "orders")
    await asyncio.gather(
        *(reporter.report(f"orders-{i}", PodFigures(ready=i % 2 == 0, send_queue=i, delivered=10)) for i in range(6))
    )
    figures = [await figures_of(kube_api, ns, f"orders-{i}") for i in range(6)]
    assert figures == [PodFigures(i % 2 == 0, send_queue=i, delivered=10) for i in range(6)]
    assert "pods" not in await status_of(kube_api, ns, "orders")


async def test_a_restarted_sidecar_continues_its_pods_counters_and_a_removed_lease_starts_afresh(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> None:
    await create(kube_api, ns, "GoQueue", "orders", {})
    await StatusReporter(sidecar_kube, ns, "orders").report("orders-1", PodFigures(True, delivered=40, poisoned=2))
    restarted = StatusReporter(sidecar_kube, ns, "orders")  # a new sidecar process in the same pod: counts from 0
    await restarted.report("orders-1", PodFigures(True, delivered=1))
    assert await figures_of(kube_api, ns, "orders-1") == PodFigures(True, delivered=41, poisoned=2)
    await restarted.report("orders-1", PodFigures(True, delivered=5))
    assert await figures_of(kube_api, ns, "orders-1") == PodFigures(True, delivered=45, poisoned=2)
    # The operator folds a Lease into the GoQueue's totals before it deletes it: those counts are kept there.
    await k8s.CoordinationV1Api(kube_api).delete_namespaced_lease(lease_name("orders", "orders-1"), ns)
    await restarted.report("orders-1", PodFigures(True, delivered=6))
    assert await figures_of(kube_api, ns, "orders-1") == PodFigures(True, delivered=6)


async def next_settings(stream: AsyncIterator[QueueSettings]) -> QueueSettings:
    return await asyncio.wait_for(anext(stream), timeout=20)


async def test_the_watcher_gives_the_settings_at_start_and_follows_changes_without_a_restart(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> None:
    await create(kube_api, ns, "GoQueue", "orders", {"retryPolicy": "patient"})
    async with as_app_service_account(kube_api, ns, sidecar_kube) as (_, sidecar):
        stream = aiter(QueueSettingsWatcher(sidecar, ns, "orders"))
        try:
            first = await next_settings(stream)
            assert first.spec.retry_policy == "patient"
            assert first.retry == RetryPolicy()
            assert first.retry_policy_found is False

            await create(kube_api, ns, "RetryPolicy", "patient", {"maxAttempts": 3, "initialBackoff": "1s"})
            second = await next_settings(stream)
            assert (second.retry.max_attempts, second.retry.initial_backoff) == (3, 1.0)
            assert second.retry_policy_found is True

            await k8s.CustomObjectsApi(kube_api).patch_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "goqueues",
                "orders",
                {"spec": {"overflow": "reject", "sendQueueLimit": 5}},
                _content_type="application/merge-patch+json",
            )
            third = await next_settings(stream)
            assert (third.spec.overflow, third.spec.send_queue_limit) == (Overflow.REJECT, 5)
            assert third.retry == second.retry
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


async def test_a_missing_goqueue_means_the_built_in_defaults(ns: str, sidecar_kube: KubeApi) -> None:
    stream = aiter(QueueSettingsWatcher(sidecar_kube, ns, "nobody"))
    try:
        settings = await next_settings(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert settings == QueueSettings(GoQueueSpec(), RetryPolicy(), goqueue_found=False)


async def test_settings_that_fail_validation_later_never_replace_good_ones(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    # Without the operator's validating webhook the server accepts initialBackoff > maxBackoff (the
    # schema cannot say it on 1.20); the watcher must not hand such a policy to the engine.
    await create(kube_api, ns, "RetryPolicy", "patient", {"maxAttempts": 3})
    await create(kube_api, ns, "GoQueue", "orders", {"retryPolicy": "patient"})
    policies = k8s.CustomObjectsApi(kube_api)

    async def patch_policy(spec: dict[str, Any]) -> None:
        await policies.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "retrypolicies", "patient", {"spec": spec}, _content_type="application/merge-patch+json"
        )

    stream = aiter(QueueSettingsWatcher(sidecar_kube, ns, "orders"))
    try:
        assert (await next_settings(stream)).retry.max_attempts == 3
        following = asyncio.create_task(next_settings(stream))
        await patch_policy({"initialBackoff": "1m", "maxBackoff": "30s"})

        async def refused() -> bool:
            return any("keeping the current settings" in r.getMessage() for r in caplog.records)

        assert await eventually(refused), "the watcher did not notice the broken RetryPolicy"
        assert not following.done()
        await patch_policy({"initialBackoff": "1s", "maxAttempts": 4})
        fixed = await following
        assert (fixed.retry.max_attempts, fixed.retry.initial_backoff, fixed.retry.max_backoff) == (4, 1.0, 30.0)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_the_heartbeat_loop_reports_until_stopped(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> None:
    await create(kube_api, ns, "GoQueue", "orders", {})
    reporter = StatusReporter(sidecar_kube, ns, "orders")
    delivered = iter(range(1000))
    stop = asyncio.Event()
    loop = asyncio.create_task(
        heartbeat(reporter, "orders-1", lambda: PodFigures(ready=True, delivered=next(delivered)), 0.05, stop)
    )

    async def beaten_thrice() -> bool:
        figures = await figures_of(kube_api, ns, "orders-1")
        return bool(figures and figures.delivered >= 2)

    try:
        assert await eventually(beaten_thrice, within=20)
    finally:
        stop.set()
        await asyncio.wait_for(loop, timeout=5)
    assert loop.done()


async def test_the_injection_only_sidecar_field_does_not_trouble_the_engine_settings(
    kube_api: k8s.ApiClient, ns: str, sidecar_kube: KubeApi
) -> None:
    await create(kube_api, ns, "GoQueue", "orders", {"overflow": "reject", "sidecar": {"image": "mine:1"}})
    stream = aiter(QueueSettingsWatcher(sidecar_kube, ns, "orders"))
    try:
        settings = await next_settings(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    assert settings.spec.overflow is Overflow.REJECT
    assert settings.goqueue_found is True
