"""The real control plane from the session fixture does what the operator and webhook will rely on."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

GROUP = "test.goq.io"


@pytest.fixture
async def namespace(kube_api: k8s.ApiClient) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = k8s.CoreV1Api(kube_api)
    await core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        await core.delete_namespace(name)


async def eventually(check: Any, within: float = 30.0) -> Any:
    """Await ``check()`` until it returns something truthy; give up with the last value after ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.2)


async def test_server_is_kubernetes_1_20(kube_api: k8s.ApiClient) -> None:
    info = await k8s.VersionApi(kube_api).get_code()
    assert (info.major, info.minor) == ("1", "20")
    assert info.git_version == "v1.20.2"


async def test_a_watch_sees_a_created_configmap(kube_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_api)
    listed = await core.list_namespaced_config_map(namespace)
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="greeting"), data={"hello": "world"})
    async with watch.Watch() as watcher:
        stream = watcher.stream(
            core.list_namespaced_config_map, namespace, resource_version=listed.metadata.resource_version
        )
        await core.create_namespaced_config_map(namespace, body)

        async def event_for_greeting() -> dict[str, Any]:
            # Other objects may appear too: the controller manager publishes kube-root-ca.crt in every namespace.
            async for event in stream:
                if event["object"].metadata.name == "greeting":
                    return dict(event)
            raise AssertionError("the watch ended without an event for the ConfigMap")

        event = await asyncio.wait_for(event_for_greeting(), timeout=30)
    assert event["type"] == "ADDED"
    assert event["object"].metadata.name == "greeting"
    assert event["object"].data == {"hello": "world"}


def widget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1, "default": 3}},
                                },
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


async def test_an_applied_crd_is_established_and_accepts_valid_objects_only(
    kube_api: k8s.ApiClient, namespace: str
) -> None:
    ext = k8s.ApiextensionsV1Api(kube_api)
    try:
        await ext.create_custom_resource_definition(widget_crd())
    except ApiException as exc:
        if exc.status != 409:  # already there from an earlier test in this session
            raise

    async def established() -> bool:
        crd = await ext.read_custom_resource_definition(f"widgets.{GROUP}")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    assert await eventually(established), "the CRD never became Established"

    objects = k8s.CustomObjectsApi(kube_api)

    async def create(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
        result: dict[str, Any] = await objects.create_namespaced_custom_object(GROUP, "v1", namespace, "widgets", body)
        return result

    async def create_when_served() -> dict[str, Any] | None:
        try:
            return await create("defaulted", {})
        except ApiException as exc:
            if exc.status == 404:  # discovery of a new CRD takes a moment
                return None
            raise

    created = await eventually(create_when_served)
    assert created["spec"] == {"size": 3}, "the schema's default was not applied"
    read = await objects.get_namespaced_custom_object(GROUP, "v1", namespace, "widgets", "defaulted")
    assert read["metadata"]["uid"] == created["metadata"]["uid"]

    with pytest.raises(ApiException) as refused:
        await create("too-small", {"size": 0})
    assert refused.value.status == 422
    assert "spec.size" in refused.value.body


async def test_garbage_collector_deletes_what_an_owner_owned(kube_api: k8s.ApiClient, namespace: str) -> None:
    core = k8s.CoreV1Api(kube_api)
    owner = await core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="owner")))
    reference = k8s.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    owned = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="owned", owner_references=[reference]))
    await core.create_namespaced_config_map(namespace, owned)
    await core.delete_namespaced_config_map("owner", namespace)

    async def owned_is_gone() -> bool:
        names = [cm.metadata.name for cm in (await core.list_namespaced_config_map(namespace)).items]
        return "owned" not in names

    assert await eventually(owned_is_gone), "kube-controller-manager's garbage collector did not delete it"
