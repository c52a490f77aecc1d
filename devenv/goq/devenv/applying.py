"""``kubectl apply`` for the few kinds the local cluster needs, through the API (no kubectl required).

Create, or replace what exists (keeping its resourceVersion). Core kinds go through ``/api/v1``;
every other kind (apps, RBAC, CRDs, GoQ's own) through the generic group API.
"""

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.devenv.errors import DevEnvError

# kind -> (plural, namespaced)
KINDS: Final[dict[str, tuple[str, bool]]] = {
    "Namespace": ("namespaces", False),
    "Secret": ("secrets", True),
    "ConfigMap": ("configmaps", True),
    "ServiceAccount": ("serviceaccounts", True),
    "Service": ("services", True),
    "Pod": ("pods", True),
    "Deployment": ("deployments", True),
    "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True),
    "ClusterRole": ("clusterroles", False),
    "ClusterRoleBinding": ("clusterrolebindings", False),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "GoQueue": ("goqueues", True),
    "RetryPolicy": ("retrypolicies", True),
}


def documents(path: Path) -> list[dict[str, Any]]:
    """The objects of a YAML file (empty documents skipped)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


async def _call(api: k8s.ApiClient, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    return await api.call_api(
        path,
        method,
        header_params=headers,
        body=body,
        response_types_map={200: "object", 201: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )


def _paths(doc: Mapping[str, Any], namespace: str | None) -> tuple[str, str]:
    kind, api_version = doc["kind"], doc["apiVersion"]
    if kind not in KINDS:
        raise DevEnvError(f"cannot apply a {kind}: the local applier knows {', '.join(KINDS)}")
    plural, namespaced = KINDS[kind]
    base = f"/api/{api_version}" if api_version == "v1" else f"/apis/{api_version}"
    meta = doc["metadata"]
    if namespaced:
        ns = meta.get("namespace") or namespace or "default"
        base = f"{base}/namespaces/{ns}"
    collection = f"{base}/{plural}"
    return collection, f"{collection}/{meta['name']}"


async def apply(api: k8s.ApiClient, doc: Mapping[str, Any], namespace: str | None = None) -> str:
    """Create or replace one object; return ``kind/name created|configured``."""
    collection, item = _paths(doc, namespace)
    name = f"{doc['kind'].lower()}/{doc['metadata']['name']}"
    try:
        await _call(api, "POST", collection, doc)
        return f"{name} created"
    except ApiException as exc:
        if exc.status != 409:
            raise DevEnvError(f"applying {name} failed: {exc.status} {exc.reason}: {exc.body!r}") from exc
    current = await _call(api, "GET", item)
    replacement = {**doc, "metadata": {**doc["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    if doc["kind"] in ("Namespace", "ServiceAccount"):
        return f"{name} unchanged"
    await _call(api, "PUT", item, replacement)
    return f"{name} configured"


async def apply_all(api: k8s.ApiClient, docs: Iterable[Mapping[str, Any]], namespace: str | None = None) -> list[str]:
    """Apply in order; CRDs are waited for until served, so that their objects can follow at once."""
    done = []
    for doc in docs:
        done.append(await apply(api, doc, namespace))
        if doc["kind"] == "CustomResourceDefinition":
            await wait_established(api, doc["metadata"]["name"])
    return done


async def wait_established(api: k8s.ApiClient, name: str, within: float = 60.0) -> None:
    """Until the CRD says Established."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(ApiException):
            crd = await _call(api, "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                return
        await asyncio.sleep(0.2)
    raise DevEnvError(f"CRD {name} not established after {within:.0f} s")


async def delete(api: k8s.ApiClient, doc: Mapping[str, Any], namespace: str | None = None) -> None:
    """Delete one object; gone already is fine."""
    _, item = _paths(doc, namespace)
    with contextlib.suppress(ApiException):
        await _call(api, "DELETE", item)
