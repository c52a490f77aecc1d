"""A restarted operator picks up where it was: no new keys, no new certificate, no duplicate objects."""

import uuid
from pathlib import Path

from kubernetes_asyncio import client as k8s

from goq.keyring import SECRET_NAME

from .operator_kube import apply_crds, eventually, namespace, operator_namespace, operator_process, simple_pod

GROUP, VERSION = "goq.io", "v1alpha1"


async def test_a_restarted_operator_keeps_keys_certificate_and_objects_and_still_injects(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    async with operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig), namespace(kube_api, "rs") as ns:
        async with operator_process(kube_api, op_ns, kubeconfig, tmp_path, "first.log"):
            body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": "orders"}, "spec": {}}
            await k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", body)

            async def service_and_keys() -> bool:
                services = await core.list_namespaced_service(ns)
                secrets = await core.list_namespaced_secret(ns, field_selector=f"metadata.name={SECRET_NAME}")
                return bool(services.items) and bool(secrets.items)

            assert await eventually(service_and_keys)
            keys_before = (await core.read_namespaced_secret(SECRET_NAME, op_ns)).data
            tls_before = (await core.read_namespaced_secret("goq-webhook-tls", op_ns)).data
            service_before = (await core.read_namespaced_service("goq-orders", ns)).metadata.uid

        async with operator_process(kube_api, op_ns, kubeconfig, tmp_path, "second.log"):
            pod = await core.create_namespaced_pod(ns, simple_pod(f"p-{uuid.uuid4().hex[:6]}", {"goq.io/id": "orders"}))
            assert [c.name for c in pod.spec.containers] == ["app", "goq-sidecar"]
            assert (await core.read_namespaced_secret(SECRET_NAME, op_ns)).data == keys_before
            assert (await core.read_namespaced_secret("goq-webhook-tls", op_ns)).data == tls_before
            assert (await core.read_namespaced_service("goq-orders", ns)).metadata.uid == service_before
            assert len((await core.list_namespaced_service(ns)).items) == 1
            assert (await core.read_namespaced_secret(SECRET_NAME, ns)).data == keys_before
