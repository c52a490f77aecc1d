"""Over time and restarts: the operator keeps keys, certificate and objects, and renews and rotates on schedule."""

import asyncio
import base64
import datetime
import json
import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.keyring import SECRET_NAME, KeyRing
from goq.operator import certificates

from .operator_kube import apply_crds, eventually, namespace, operator_namespace, operator_process, simple_pod
from .test_operator_key_scopes import pair_ring_problems

GROUP, VERSION = "goq.io", "v1alpha1"
MERGE = "application/merge-patch+json"


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
            ring = decoded(await core.read_namespaced_secret(SECRET_NAME, ns))
            master = {k: base64.b64decode(v) for k, v in keys_before.items()}
            assert pair_ring_problems(ns, ring, master) == []  # its pair keys, from the same master


def decoded(secret: k8s.V1Secret) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


async def read_ring(core: k8s.CoreV1Api, namespace: str) -> KeyRing:
    secret = await core.read_namespaced_secret(SECRET_NAME, namespace)
    return KeyRing.from_secret(decoded(secret), secret.metadata.annotations)


async def test_an_expiring_webhook_certificate_is_renewed_and_the_ca_bundle_trusts_old_and_new(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    async with operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig), namespace(kube_api, "tls") as ns:
        old = certificates.issue(("127.0.0.1",), datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=350))
        data = {k: base64.b64encode(v).decode() for k, v in old.to_secret_data().items()}
        await core.create_namespaced_secret(op_ns, {"metadata": {"name": "goq-webhook-tls"}, "data": data})

        async with operator_process(kube_api, op_ns, kubeconfig, tmp_path):
            renewed = certificates.TlsBundle.from_secret_data(
                decoded(await core.read_namespaced_secret("goq-webhook-tls", op_ns))
            )
            assert renewed is not None
            assert renewed.cert != old.cert
            assert not certificates.needs_renewal(renewed, ("127.0.0.1",), datetime.datetime.now(datetime.UTC))
            hook = await k8s.AdmissionregistrationV1Api(kube_api).read_mutating_webhook_configuration(
                "goq-sidecar-injector"
            )
            bundle = base64.b64decode(hook.webhooks[0].client_config.ca_bundle)
            assert bundle == renewed.ca
            assert old.ca in bundle
            # The API server trusts the renewed certificate: injection works.
            pod = await core.create_namespaced_pod(ns, simple_pod("after-renewal", {"goq.io/id": "orders"}))
            assert [c.name for c in pod.spec.containers] == ["app", "goq-sidecar"]


async def test_keys_rotate_on_schedule_and_every_namespace_ring_follows_the_master(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    rotation = {"GOQ_KEY_ROTATION": "2s", "GOQ_KEY_PROPAGATION": "1s", "GOQ_KEY_RETENTION": "1h"}
    async with (
        operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig),
        namespace(kube_api, "kr") as ns,
        operator_process(kube_api, op_ns, kubeconfig, tmp_path, extra_env=rotation),
    ):
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": "orders"}, "spec": {}}
        await k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", body)
        first = await read_ring(core, op_ns)

        async def rotated_and_copied() -> KeyRing | None:
            master = await core.read_namespaced_secret(SECRET_NAME, op_ns)
            try:
                copy = await core.read_namespaced_secret(SECRET_NAME, ns)
            except ApiException:
                return None
            ring = await read_ring(core, op_ns)
            active = decoded(master)["active"].decode()
            moved = active != first.keys[0].id  # a newer key signs once its propagation delay passed
            same = pair_ring_problems(ns, decoded(copy), decoded(master)) == []  # pair keys of every master key
            return ring if len(ring.keys) >= 3 and moved and same else None

        ring = await eventually(rotated_and_copied, within=30)
        assert ring is not None, "the key ring did not rotate or a namespace's pair keys did not follow"
        assert ring.keys[0] == first.keys[0], "the first key must stay valid within the retention"
        assert len({k.id for k in ring.keys}) == len(ring.keys)


async def test_with_the_operator_down_pods_are_created_metadata_changes_pass_and_creates_wait_for_it(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    async with (
        operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig),
        namespace(kube_api, "down") as ns,
        operator_process(kube_api, op_ns, kubeconfig, tmp_path) as operator,
    ):
        objects = k8s.CustomObjectsApi(kube_api)
        kept = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": "kept"}, "spec": {}}
        await objects.create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", kept)
        await asyncio.to_thread(operator.server.stop)  # its webhook configurations stay registered

        # Metadata changes are never stuck: updates skip an unreachable webhook (failurePolicy Ignore) ...
        labelled = await objects.patch_namespaced_custom_object(
            GROUP, VERSION, ns, "goqueues", "kept", {"metadata": {"labels": {"team": "shop"}}}, _content_type=MERGE
        )
        assert labelled["metadata"]["labels"] == {"team": "shop"}
        # ... and the CRD's schema still refuses what it can say, such as a quantity no pod would take.
        bad = {"spec": {"sidecar": {"resources": {"requests": {"cpu": "lots"}}}}}
        with pytest.raises(ApiException) as unparsable:
            await objects.patch_namespaced_custom_object(
                GROUP, VERSION, ns, "goqueues", "kept", bad, _content_type=MERGE
            )
        assert unparsable.value.status == 422
        assert "spec.sidecar.resources.requests.cpu" in json.loads(unparsable.value.body)["message"]

        plain = await core.create_namespaced_pod(ns, simple_pod("plain"))
        asking = await core.create_namespaced_pod(ns, simple_pod("asking", {"goq.io/id": "orders"}))
        assert [c.name for c in plain.spec.containers] == ["app"]
        assert [c.name for c in asking.spec.containers] == ["app"]  # reported once the operator is back

        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": "orders"}, "spec": {}}
        with pytest.raises(ApiException) as refused:  # creates wait for the webhook (failurePolicy Fail)
            await objects.create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", body)
        assert 'failed calling webhook "validate.goq.io"' in json.loads(refused.value.body)["message"]


async def test_a_hung_webhook_delays_a_pod_by_at_most_its_timeout(kube_api: k8s.ApiClient, tmp_path: Path) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    async with (
        operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig),
        namespace(kube_api, "hung") as ns,
        operator_process(kube_api, op_ns, kubeconfig, tmp_path) as operator,
    ):
        os.kill(operator.server.pid, signal.SIGSTOP)  # accepts connections, never answers
        try:
            started = time.monotonic()
            pod = await core.create_namespaced_pod(ns, simple_pod("patient"))
            waited = time.monotonic() - started
        finally:
            os.kill(operator.server.pid, signal.SIGCONT)
        assert [c.name for c in pod.spec.containers] == ["app"]
        assert waited >= 4.5, f"{waited:.1f} s: the API server did not wait for the webhook at all"
        assert waited < 5 + 3, f"pod creation took {waited:.1f} s with a 5 s webhook timeout"
