"""Helpers for tests against the real kube-apiserver: CRDs, namespaces, waiting, the operator process."""

import asyncio
import base64
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.devenv import processes
from goq.devenv.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], within: float = 30.0, interval: float = 0.2) -> T:
    """Await ``check()`` until it returns something truthy; the last value after ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)


async def apply_crds(api: k8s.ApiClient) -> None:
    """Create (or replace) GoQ's CRDs from crds/ and wait until they are served."""
    ext = k8s.ApiextensionsV1Api(api)
    for path in (ROOT / "crds" / "goqueues.yaml", ROOT / "crds" / "retrypolicies.yaml"):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            await ext.create_custom_resource_definition(crd)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = await ext.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = current.metadata.resource_version
            await ext.replace_custom_resource_definition(name, crd)

        async def established(name: str = name) -> bool:
            read = await ext.read_custom_resource_definition(name)
            return any(c.type == "Established" and c.status == "True" for c in read.status.conditions or [])

        assert await eventually(established), f"CRD {name} never became Established"
    objects = k8s.CustomObjectsApi(api)

    async def served() -> bool:
        try:
            await objects.list_cluster_custom_object("goq.io", "v1alpha1", "goqueues")
            await objects.list_cluster_custom_object("goq.io", "v1alpha1", "retrypolicies")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    assert await eventually(served), "the GoQ resources are not served"


@contextlib.asynccontextmanager
async def namespace(api: k8s.ApiClient, prefix: str = "t", labels: dict[str, str] | None = None) -> AsyncIterator[str]:
    """A fresh namespace whose default ServiceAccount has its token (so pods can be created)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(api)
    await core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels=labels)))

    async def token_ready() -> bool:
        try:
            account = await core.read_namespaced_service_account("default", name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return bool(account.secrets)

    try:
        assert await eventually(token_ready), f"namespace {name} got no default ServiceAccount token"
        yield name
    finally:
        await core.delete_namespace(name)


def simple_pod(
    name: str, annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
    }


@dataclass
class OperatorProcess:
    """A running ``goq-operator`` and what tests need to know about it."""

    namespace: str
    port: int
    server: processes.ServerProcess

    def log(self) -> str:
        """The end of the log, for failure messages."""
        return self.server.log_tail(60)

    def logged(self, text: str) -> bool:
        """Whether the whole log holds ``text`` (a line of interest may be far from its end)."""
        try:
            return text in self.server.log_path.read_text(errors="replace")
        except OSError:
            return False


OPERATOR_CODE = "import sys; from goq.cli.operator import main; sys.exit(main())"


async def apply_rbac(api: k8s.ApiClient, file: str, namespace: str | None = None) -> None:
    """Create or replace the objects of ``manifests/rbac/<file>``, moved from goq-system to ``namespace``."""
    text = (ROOT / "manifests" / "rbac" / file).read_text()
    if namespace:
        text = text.replace("goq-system", namespace)
    rbac, core = k8s.RbacAuthorizationV1Api(api), k8s.CoreV1Api(api)
    for doc in yaml.safe_load_all(text):
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "ServiceAccount":
            with contextlib.suppress(ApiException):
                await core.create_namespaced_service_account(doc["metadata"]["namespace"], doc)
            continue
        if kind in ("Role", "RoleBinding"):
            ns = doc["metadata"]["namespace"]
            create_in, replace_in = {
                "Role": (rbac.create_namespaced_role, rbac.replace_namespaced_role),
                "RoleBinding": (rbac.create_namespaced_role_binding, rbac.replace_namespaced_role_binding),
            }[kind]
            try:
                await create_in(ns, doc)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                await replace_in(name, ns, doc)
            continue
        create, replace = {
            "ClusterRole": (rbac.create_cluster_role, rbac.replace_cluster_role),
            "ClusterRoleBinding": (rbac.create_cluster_role_binding, rbac.replace_cluster_role_binding),
        }[kind]
        try:
            await create(doc)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await replace(name, doc)


async def service_account_kubeconfig(api: k8s.ApiClient, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount with its token: RBAC applies for real."""
    core = k8s.CoreV1Api(api)

    async def token_secret() -> str | None:
        found = await core.read_namespaced_service_account(account, namespace)
        return found.secrets[0].name if found.secrets else None

    secret_name = await eventually(token_secret)
    assert secret_name, f"ServiceAccount {namespace}/{account} got no token"
    secret = await core.read_namespaced_secret(secret_name, namespace)
    token = base64.b64decode(secret.data["token"]).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": api.configuration.host, "certificate-authority-data": secret.data["ca.crt"]},
            }
        ],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": account}}],
        "current-context": "c",
    }
    await asyncio.to_thread(_write_private, path, yaml.safe_dump(config))
    return path


def _write_private(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


@contextlib.asynccontextmanager
async def operator_namespace(api: k8s.ApiClient, workdir: Path) -> AsyncIterator[tuple[str, Path]]:
    """The operator's namespace (never injected) with the ServiceAccount goq-operator bound to exactly the
    RBAC of manifests/rbac/operator.yaml, and a kubeconfig that authenticates as it."""
    async with namespace(api, "goq-system", {"goq.io/injection": "disabled"}) as ns:
        await apply_rbac(api, "operator.yaml", ns)
        yield ns, await service_account_kubeconfig(api, ns, "goq-operator", workdir / "operator.kubeconfig")


@contextlib.asynccontextmanager
async def operator_process(
    api: k8s.ApiClient,
    ns: str,
    kubeconfig: Path,
    workdir: Path,
    log_name: str = "operator.log",
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[OperatorProcess]:
    """``goq-operator`` as a process, its webhook on a loopback port, ready once it serves and registered.

    Quick timings (stale after 2 s, sweep every 0.5 s) keep the tests short. On exit the process is
    stopped and its webhook registrations are removed, so later tests see a cluster without them.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env |= {
        "KUBECONFIG": str(kubeconfig),
        "TMPDIR": str(workdir),  # the Kubernetes client writes inline CA data to temporary files: a killed
        # operator leaves them in its workdir, not in /tmp
        "GOQ_OPERATOR_NAMESPACE": ns,
        "GOQ_WEBHOOK_HOST": "127.0.0.1",
        "GOQ_WEBHOOK_PORT": str(port),
        "GOQ_WEBHOOK_URL": f"https://127.0.0.1:{port}",
        "GOQ_STALE_AFTER": "2s",
        "GOQ_SWEEP_INTERVAL": "500ms",
        "GOQ_WEBHOOK_DRAIN": "0s",  # nothing calls a stopping test operator; tests/e2e's rollout test drains
        "GOQ_SIDECAR_IMAGE": "example/goq-sidecar:test",
        **(extra_env or {}),
    }
    server = processes.start("goq-operator", [sys.executable, "-c", OPERATOR_CODE], workdir / log_name, env=env)
    handle = OperatorProcess(ns, port, server)
    admission = k8s.AdmissionregistrationV1Api(api)
    try:

        async def healthy() -> bool:
            if not server.alive():
                raise AssertionError(f"the operator exited; its log:\n{handle.log()}")
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"https://127.0.0.1:{port}/healthz", ssl=False) as resp,
                ):
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        async def registered() -> bool:
            try:
                mutating = await admission.read_mutating_webhook_configuration("goq-sidecar-injector")
                validating = await admission.read_validating_webhook_configuration("goq-validator")
            except ApiException:
                return False
            urls = [mutating.webhooks[0].client_config.url, validating.webhooks[0].client_config.url]
            return all(f"127.0.0.1:{port}/" in (url or "") for url in urls)

        assert await eventually(healthy, within=60), f"the operator never served; its log:\n{handle.log()}"
        assert await eventually(registered), f"the webhooks were never registered; the log:\n{handle.log()}"
        yield handle
    finally:
        await asyncio.to_thread(server.stop)
        for delete in (
            admission.delete_mutating_webhook_configuration("goq-sidecar-injector"),
            admission.delete_validating_webhook_configuration("goq-validator"),
        ):
            with contextlib.suppress(ApiException):
                await delete


@contextlib.asynccontextmanager
async def running_operator(api: k8s.ApiClient, workdir: Path) -> AsyncIterator[OperatorProcess]:
    """A fresh operator namespace with the operator running in it."""
    async with (
        operator_namespace(api, workdir) as (ns, kubeconfig),
        operator_process(api, ns, kubeconfig, workdir) as op,
    ):
        yield op
