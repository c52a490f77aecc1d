"""GoQ end to end on the real control plane: the operator (its webhook really called), the pod runner
running the injected pods as processes, the shop example's programs as the applications.

One operator and one pod runner per test module (each on a node of its own, so a module never sees
another's pods); each test works in a namespace of its own, which is deleted, pods and all, at its end.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.devenv import applying, stack
from goq.devenv.demo import Shop, container_status, ready

T = TypeVar("T")

STALE_AFTER = 3.0
"""The operator's GOQ_STALE_AFTER here: seconds without a heartbeat before a pod is marked stale."""
SIDECAR_ENV = {"GOQ_STATUS_INTERVAL": "1s", "GOQ_LOG_FORMAT": "text"}
VOLUME_SYNC = 2.0
"""The pod runner's Secret volume sync here, in seconds (a kubelet's is about a minute)."""


async def eventually(check: Callable[[], Awaitable[T]], within: float = 60.0, interval: float = 0.3) -> T:
    """Await ``check()`` until it returns something truthy; the last value after ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)


@dataclass
class Stack:
    """The operator and the pod runner, and where the runner keeps pods."""

    api: k8s.ApiClient
    kubeconfig: Path
    mongo_uri: str
    runner_dir: Path
    operator: stack.Started
    runner: stack.Started

    def operator_log(self) -> str:
        return self.operator.server.log_tail(40)


@pytest.fixture(scope="module")
async def goq_stack(
    request: pytest.FixtureRequest,
    kube_api: k8s.ApiClient,
    kubeconfig: Path,
    mongo_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """A test module may set ``OPERATOR_ENV`` (more operator settings, e.g. a short key propagation)."""
    workdir = tmp_path_factory.mktemp("e2e")
    await stack.prepare(kube_api)
    env = {"GOQ_STALE_AFTER": f"{STALE_AFTER:g}s", "GOQ_SWEEP_INTERVAL": "500ms"}
    operator = await stack.start_operator(
        kube_api, kubeconfig, workdir, env=env | getattr(request.module, "OPERATOR_ENV", {})
    )
    try:
        runner = await stack.start_pod_runner(
            kubeconfig,
            workdir,
            sidecar_env=SIDECAR_ENV,
            node=f"goq-e2e-{uuid.uuid4().hex[:6]}",
            volume_sync=VOLUME_SYNC,
        )
        try:
            yield Stack(kube_api, kubeconfig, mongo_uri, Path(runner.details["directory"]), operator, runner)
        finally:
            await asyncio.to_thread(runner.server.stop)
    finally:
        await asyncio.to_thread(operator.server.stop)
        admission = k8s.AdmissionregistrationV1Api(kube_api)
        for delete in (
            admission.delete_mutating_webhook_configuration("goq-sidecar-injector"),
            admission.delete_validating_webhook_configuration("goq-validator"),
        ):
            with contextlib.suppress(ApiException):
                await delete


@dataclass
class ShopSpace:
    """A namespace ready for GoQ pods: the MongoDB Secret and the sidecars' RoleBinding are in it."""

    name: str
    shop: Shop
    stack: Stack

    @property
    def api(self) -> k8s.ApiClient:
        return self.stack.api

    async def queues(self, retry: dict[str, Any], *identities: str) -> None:
        """RetryPolicy ``retry`` and a GoQueue per identity using it."""
        docs: list[dict[str, Any]] = [
            {"apiVersion": names.API_VERSION, "kind": "RetryPolicy", "metadata": {"name": "e2e"}, "spec": retry}
        ]
        for identity in identities:
            spec = {"retryPolicy": "e2e", "poisonQueue": {"type": "mongodb"}}
            docs.append(
                {"apiVersion": names.API_VERSION, "kind": "GoQueue", "metadata": {"name": identity}, "spec": spec}
            )
        await applying.apply_all(self.api, docs, self.name)

    async def pod(
        self,
        app: str,
        env: dict[str, str] | None = None,
        *,
        name: str | None = None,
        more: list[dict[str, Any]] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """A bare Pod annotated ``goq.io/id: <app>`` running the example program ``<app>`` (and ``more``)."""
        container = {
            "name": "app",
            "image": f"goq/goq-example-{app}:test",
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        }
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name or app, "labels": {"app": app}, "annotations": {names.ANNOTATION_ID: app}},
            "spec": {"containers": [container, *(more or [])], **spec},
        }
        created = await k8s.CoreV1Api(self.api).create_namespaced_pod(self.name, body)
        result: dict[str, Any] = self.api.sanitize_for_serialization(created)
        return result

    async def running(self, app: str, within: float = 90.0) -> dict[str, Any]:
        """The pod of ``app`` once it is Ready."""

        async def check() -> dict[str, Any] | None:
            pod = await self.shop.pod(app)
            return pod if ready(pod) else None

        pod = await eventually(check, within)
        assert pod is not None, f"pod {app} never became Ready; operator log:\n{self.stack.operator_log()}"
        return pod

    async def delete(self, app: str) -> None:
        """Delete the pod of ``app`` and wait until it is gone (its processes stopped)."""
        core = k8s.CoreV1Api(self.api)
        pod = await self.shop.pod(app)
        assert pod is not None
        await core.delete_namespaced_pod(pod["metadata"]["name"], self.name)

        async def gone() -> bool:
            listed = await core.list_namespaced_pod(self.name, label_selector=f"app={app}")
            return not listed.items

        assert await eventually(gone, 60), f"pod {app} was never deleted"

    def sidecar_address(self, pod: dict[str, Any]) -> str:
        return f"{pod['status']['podIP']}:{names.PORT_GRPC}"

    def restarts(self, pod: dict[str, Any] | None) -> int:
        return int(container_status(pod or {}, "goq-sidecar").get("restartCount", 0))


@pytest.fixture
async def space(goq_stack: Stack) -> AsyncIterator[ShopSpace]:
    api = goq_stack.api
    core = k8s.CoreV1Api(api)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await core.create_namespace({"metadata": {"name": name}})

    async def token_ready() -> bool:
        with contextlib.suppress(ApiException):
            return bool((await core.read_namespaced_service_account("default", name)).secrets)
        return False

    assert await eventually(token_ready), f"namespace {name} got no ServiceAccount token"
    await stack.mongodb_secret(api, name, goq_stack.mongo_uri)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "goq-sidecar", "namespace": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "goq-sidecar"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": name}],
    }
    await applying.apply(api, binding)
    try:
        yield ShopSpace(name, Shop(api, goq_stack.kubeconfig, goq_stack.runner_dir, name), goq_stack)
    finally:
        await core.delete_namespace(name)

        async def pods_gone() -> bool:
            return not (await core.list_namespaced_pod(name)).items

        await eventually(pods_gone, 60)
