"""The operator's one boundary to the Kubernetes API: the client, and API errors as GoQ errors."""

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Final, TypeVar

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.errors import PermanentError, TemporaryError

T = TypeVar("T")
MERGE_PATCH: Final[dict[str, Any]] = {"_content_type": "application/merge-patch+json"}
"""Keyword arguments for a JSON merge patch (the client would pick JSON Patch for custom objects)."""


def body(data: dict[str, Any]) -> Any:
    """A plain dict as a request body: the client serialises dicts as they are, its stubs want models."""
    return data


@contextlib.asynccontextmanager
async def connect() -> AsyncIterator[k8s.ApiClient]:
    """An API client: in-cluster with the pod's ServiceAccount, else ``$KUBECONFIG`` or ~/.kube/config."""
    configuration = k8s.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await k8s_config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG") or None, client_configuration=configuration
        )
    async with k8s.ApiClient(configuration) as api:
        yield api


async def call(what: str, awaitable: Awaitable[T]) -> T:
    """Await an API call; failures become TemporaryError (retry) or PermanentError, naming ``what``."""
    try:
        return await awaitable
    except ApiException as exc:
        raise translate(what, exc) from exc
    except (OSError, TimeoutError, aiohttp.ClientError) as exc:
        raise TemporaryError(f"{what}: the API server did not answer ({exc})", delay=2.0) from exc


def translate(what: str, exc: ApiException) -> TemporaryError | PermanentError:
    """One API error as a GoQ error: 409, 429 and 5xx may pass, the rest will not."""
    reason = f"{what}: {exc.status} {exc.reason}"
    if exc.status in (409, 429) or (exc.status or 0) >= 500:
        return TemporaryError(reason, delay=1.0)
    return PermanentError(reason)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind a translated error, if any."""
    cause = exc.__cause__
    return cause.status if isinstance(cause, ApiException) else None


async def get_or_none(what: str, awaitable: Awaitable[T]) -> T | None:
    """An object, or ``None`` if it does not exist."""
    try:
        return await awaitable
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise translate(what, exc) from exc


def custom(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    """The API for GoQueues and RetryPolicies."""
    return k8s.CustomObjectsApi(api)


async def get_goqueue(api: k8s.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """A GoQueue as a dict, or ``None``."""
    return await get_or_none(
        f"reading GoQueue {namespace}/{name}",
        custom(api).get_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.GOQUEUE_PLURAL, name),
    )


async def patch_goqueue_status(api: k8s.ApiClient, namespace: str, name: str, patch: dict[str, Any]) -> None:
    """A JSON merge patch of a GoQueue's status subresource (with ``metadata.resourceVersion``: guarded)."""
    await call(
        f"patching the status of GoQueue {namespace}/{name}",
        custom(api).patch_namespaced_custom_object_status(
            names.GROUP, names.VERSION, namespace, names.GOQUEUE_PLURAL, name, patch, **MERGE_PATCH
        ),
    )
