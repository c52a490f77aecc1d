"""The cluster through the kubeconfig, as kubectl reads it: ``--kubeconfig``, ``$KUBECONFIG``, ``--context``.

The one module of goqctl that imports the Kubernetes client (about 0.4 s; the extra ``goq[kube]``), and only
when a command needs the cluster: ``list``, ``status`` and ``--identity``. Its errors are translated here into
``TargetError`` (exit 3) with what the API server said.
"""

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from goq import names
from goq.cli.goqctl.errors import TargetError

try:
    import aiohttp
    from kubernetes_asyncio import client as k8s
    from kubernetes_asyncio import config as kube_config
    from kubernetes_asyncio.client.exceptions import ApiException
    from kubernetes_asyncio.config.config_exception import ConfigException
except ModuleNotFoundError as missing:  # `pip install goq` without the extra: the client and --sidecar only
    raise TargetError(
        f"reaching the cluster needs the Kubernetes client ({missing.name} is not installed): "
        "pip install 'goq[kube]', or reach a sidecar directly with --sidecar HOST:PORT"
    ) from missing


@dataclass(frozen=True)
class KubeSettings:
    """Which cluster and namespace: the flags as given (``None``: the kubeconfig's own choice)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False


@dataclass
class Cluster:
    """A connected API client and the namespace commands default to."""

    api: k8s.ApiClient
    configuration: k8s.Configuration
    namespace: str

    @property
    def scope(self) -> str | None:
        """The namespace to list in; ``None`` for every namespace."""
        return self.namespace or None

    async def namespaces(self) -> list[str]:
        """The names of every namespace (for completion)."""
        with translated("listing namespaces"):
            listed = await k8s.CoreV1Api(self.api).list_namespace()
        return sorted(str(item.metadata.name) for item in listed.items)

    async def goqueues(self, namespace: str | None) -> list[dict[str, Any]]:
        """Every GoQueue of ``namespace`` (``None``: of every namespace), sorted by namespace and name."""
        objects = k8s.CustomObjectsApi(self.api)
        with translated("listing GoQueues"):
            if namespace is None:
                found = await objects.list_cluster_custom_object(names.GROUP, names.VERSION, names.GOQUEUE_PLURAL)
            else:
                found = await objects.list_namespaced_custom_object(
                    names.GROUP, names.VERSION, namespace, names.GOQUEUE_PLURAL
                )
        items: list[dict[str, Any]] = found.get("items") or []
        return sorted(items, key=lambda q: (q["metadata"]["namespace"], q["metadata"]["name"]))

    async def goqueue(self, namespace: str, identity: str) -> dict[str, Any] | None:
        objects = k8s.CustomObjectsApi(self.api)
        try:
            with translated(f"reading GoQueue {namespace}/{identity}"):
                found: dict[str, Any] = await objects.get_namespaced_custom_object(
                    names.GROUP, names.VERSION, namespace, names.GOQUEUE_PLURAL, identity
                )
        except TargetError as exc:
            if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 404:
                return None
            raise
        return found

    async def pods(self, namespace: str | None, identity: str | None = None) -> list[dict[str, Any]]:
        """The pods labelled ``goq.io/id`` (of ``identity``, or of any), as dicts, sorted by name."""
        core = k8s.CoreV1Api(self.api)
        selector = f"{names.LABEL_ID}={identity}" if identity else names.LABEL_ID
        with translated(f"listing the pods of {identity or 'GoQ identities'}"):
            if namespace is None:
                listed = await core.list_pod_for_all_namespaces(label_selector=selector)
            else:
                listed = await core.list_namespaced_pod(namespace, label_selector=selector)
        pods: list[dict[str, Any]] = self.api.sanitize_for_serialization(listed.items)
        return sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))


def kubeconfig_path(settings: KubeSettings) -> str:
    """The kubeconfig kubectl would read; a TargetError if none of its files exists."""
    path = settings.kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
    if not any(os.path.isfile(os.path.expanduser(p)) for p in path.split(os.pathsep) if p):
        raise TargetError(
            f"cannot use the kubeconfig {path}: no such file; give --kubeconfig FILE or set KUBECONFIG "
            "(or use --sidecar HOST:PORT to reach a sidecar directly)"
        )
    return path


def contexts(settings: KubeSettings) -> list[str]:
    """The names of the kubeconfig's contexts, of every file ``$KUBECONFIG`` lists (for completion)."""
    files = [os.path.expanduser(p) for p in kubeconfig_path(settings).split(os.pathsep) if p]
    return [
        str(context["name"])
        for file in files
        if os.path.isfile(file)
        for context in kube_config.list_kube_config_contexts(config_file=file)[0]
    ]


@contextlib.asynccontextmanager
async def connect(settings: KubeSettings) -> AsyncIterator[Cluster]:
    """An API client for the kubeconfig's cluster; the namespace from ``-n``, the context, or ``default``."""
    configuration = k8s.Configuration()
    path = kubeconfig_path(settings)
    try:
        loader = await kube_config.load_kube_config(
            config_file=settings.kubeconfig,
            context=settings.context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError) as exc:
        raise TargetError(f"cannot use the kubeconfig {path}: {exc}") from exc
    context = (loader.current_context or {}).get("context") or {}
    namespace = "" if settings.all_namespaces else settings.namespace or context.get("namespace") or "default"
    api = k8s.ApiClient(configuration)
    try:
        yield Cluster(api, configuration, namespace)
    finally:
        await api.close()


@contextlib.contextmanager
def translated(doing: str) -> Iterator[None]:
    """API and connection errors as TargetError, saying what goqctl was doing and what the server said."""
    try:
        yield
    except ApiException as exc:
        raise TargetError(f"{doing}: the API server answered {exc.status} {exc.reason}: {_message(exc)}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise TargetError(f"{doing}: cannot reach the API server: {exc}") from exc


def _message(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body or "").get("message") or exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or "").strip()
