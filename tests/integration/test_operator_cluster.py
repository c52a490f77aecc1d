"""The operator as a real process against the real kube-apiserver, which really calls its webhooks.

One operator serves the whole module (start-up costs seconds); each test works in its own namespace.
"""

import asyncio
import base64
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import pair_keys
from goq.keyring import SECRET_NAME, KeyRing
from goq.queue_status import PodFigures
from goq.sidecar.adapters.kube import StatusReporter
from goq.sidecar.adapters.kube.api import KubeApi
from goq.webhook import InjectionSettings, injection_patch

from .operator_kube import OperatorProcess, apply_crds, eventually, namespace, running_operator, simple_pod
from .test_operator_key_scopes import pair_ring_problems

GROUP, VERSION = "goq.io", "v1alpha1"


@pytest.fixture(scope="module")
async def operator(kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[OperatorProcess]:
    await apply_crds(kube_api)
    async with running_operator(kube_api, tmp_path_factory.mktemp("operator")) as handle:
        yield handle


@pytest.fixture
async def ns(kube_api: k8s.ApiClient, operator: OperatorProcess) -> AsyncIterator[str]:
    async with namespace(kube_api, "op") as name:
        yield name


def objects(api: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api)


async def create_goqueue(api: k8s.ApiClient, ns: str, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": name}, "spec": spec or {}}
    created: dict[str, Any] = await objects(api).create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", body)
    return created


async def read_goqueue(api: k8s.ApiClient, ns: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = await objects(api).get_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", name)
        return found
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


async def create_pod(api: k8s.ApiClient, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    created = await k8s.CoreV1Api(api).create_namespaced_pod(ns, body)
    result: dict[str, Any] = api.sanitize_for_serialization(created)
    return result


async def events_about(api: k8s.ApiClient, ns: str, name: str) -> list[k8s.CoreV1Event]:
    listed = await k8s.CoreV1Api(api).list_namespaced_event(ns, field_selector=f"involvedObject.name={name}")
    return list(listed.items)


async def events_until(
    api: k8s.ApiClient, ns: str, name: str, wanted: Callable[[list[k8s.CoreV1Event]], bool]
) -> list[k8s.CoreV1Event]:
    """The Events about ``name`` once ``wanted`` holds for them (or the last ones listed): the operator posts
    an Event after the status change it reports, so a check right after the status may come too early."""

    async def listed() -> list[k8s.CoreV1Event] | None:
        events = await events_about(api, ns, name)
        return events if wanted(events) else None

    return await eventually(listed) or await events_about(api, ns, name)


def condition(goqueue: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for cond in ((goqueue or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return dict(cond)
    return {}


async def test_a_goqueue_gets_its_headless_service_owned_by_it_and_deleting_it_removes_the_service(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    goqueue = await create_goqueue(kube_api, ns, "orders")
    core = k8s.CoreV1Api(kube_api)

    async def service() -> k8s.V1Service | None:
        try:
            return await core.read_namespaced_service("goq-orders", ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    found = await eventually(service)
    assert found is not None, "no Service goq-orders"
    assert found.spec.cluster_ip == "None"
    assert found.spec.selector == {"goq.io/id": "orders"}
    assert [(p.name, p.port) for p in found.spec.ports] == [("peer", 7702)]
    [owner] = found.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("GoQueue", "orders", goqueue["metadata"]["uid"])

    ready = await eventually(lambda: _ready_reason(kube_api, ns, "orders", "Reconciled"))
    assert ready, f"GoQueue never Ready: {await read_goqueue(kube_api, ns, 'orders')}"
    wanted = {"ServiceReady", "Reconciled"}
    events = await events_until(kube_api, ns, "orders", lambda found: {e.reason for e in found} >= wanted)
    assert {e.reason for e in events} >= wanted
    reconciled = await read_goqueue(kube_api, ns, "orders")
    assert reconciled is not None
    assert not reconciled["metadata"].get("finalizers"), "deleting a GoQueue must never wait for the operator"

    await objects(kube_api).delete_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", "orders")

    async def goqueue_gone() -> bool:
        return await read_goqueue(kube_api, ns, "orders") is None

    assert await eventually(goqueue_gone), "the GoQueue was not deleted (a finalizer left behind?)"

    async def gone() -> bool:
        return await service() is None

    # The garbage collector rediscovers resource kinds every 30 s, so a CRD made moments ago may need that long.
    assert await eventually(gone, within=90), "the garbage collector left Service goq-orders behind"


async def _ready_reason(api: k8s.ApiClient, ns: str, name: str, reason: str) -> bool:
    return condition(await read_goqueue(api, ns, name), "Ready").get("reason") == reason


async def test_a_missing_retry_policy_makes_the_goqueue_not_ready_until_it_exists(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    await create_goqueue(kube_api, ns, "orders", {"retryPolicy": "patient"})
    assert await eventually(lambda: _ready_reason(kube_api, ns, "orders", "RetryPolicyNotFound"))
    cond = condition(await read_goqueue(kube_api, ns, "orders"), "Ready")
    assert cond["status"] == "False"
    assert "RetryPolicy 'patient', which does not exist" in cond["message"]
    assert cond["lastTransitionTime"]
    policy = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RetryPolicy", "metadata": {"name": "patient"}, "spec": {}}
    await objects(kube_api).create_namespaced_custom_object(GROUP, VERSION, ns, "retrypolicies", policy)
    assert await eventually(lambda: _ready_reason(kube_api, ns, "orders", "Reconciled"))


async def test_the_hmac_key_ring_is_made_once_and_the_goqueue_namespace_gets_its_pair_keys_only(
    kube_api: k8s.ApiClient, ns: str, operator: OperatorProcess
) -> None:
    await create_goqueue(kube_api, ns, "orders")
    core = k8s.CoreV1Api(kube_api)

    async def copy() -> k8s.V1Secret | None:
        try:
            return await core.read_namespaced_secret(SECRET_NAME, ns)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    copied = await eventually(copy)
    assert copied is not None
    master = await core.read_namespaced_secret(SECRET_NAME, operator.namespace)
    assert copied.metadata.annotations == master.metadata.annotations  # the schedule: ids and times only
    ring = KeyRing.from_secret({k: base64.b64decode(v) for k, v in master.data.items()}, master.metadata.annotations)
    master_key_id = ring.keys[0].id
    assert len(ring.keys[0].material) == 32
    pairs = {k: base64.b64decode(v) for k, v in copied.data.items()}
    assert pair_ring_problems(ns, pairs, {k: base64.b64decode(v) for k, v in master.data.items()}) == []
    assert pair_keys.entry(ns, ns, master_key_id) in pairs
    assert master_key_id not in pairs
    log = operator.server.log_path.read_text()
    for key in [ring.keys[0].material, *pairs.values()]:
        assert base64.b64encode(key).decode() not in log
        assert key.hex() not in log


async def test_a_pod_with_the_annotation_is_created_with_the_sidecar_by_the_api_servers_call(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    created = await create_pod(kube_api, ns, simple_pod("app", {"goq.io/id": "orders"}, {"app": "shop"}))
    assert created["metadata"]["labels"] == {"app": "shop", "goq.io/id": "orders"}
    assert created["metadata"]["annotations"]["goq.io/injected"]
    scrape = {k: v for k, v in created["metadata"]["annotations"].items() if k.startswith("prometheus.io/")}
    assert scrape == {"prometheus.io/scrape": "true", "prometheus.io/port": "7703", "prometheus.io/path": "/metrics"}
    names = [c["name"] for c in created["spec"]["containers"]]
    assert names == ["app", "goq-sidecar"]
    sidecar = created["spec"]["containers"][1]
    assert sidecar["image"] == "example/goq-sidecar:test"
    assert {p["containerPort"] for p in sidecar["ports"]} == {7700, 7701, 7702, 7703}
    assert {"name": "GOQ_IDENTITY", "value": "orders"} in sidecar["env"]
    assert {"name": "GOQ_DEDUPE_WINDOW", "value": "2h"} in sidecar["env"]  # the operator's, for every sidecar
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(v["name"] == "goq-hmac-keys" for v in created["spec"]["volumes"])
    # Applying the webhook's patch to what the server stored changes nothing.
    assert injection_patch(created, InjectionSettings()) == []


async def test_a_pod_without_the_annotation_is_created_unchanged(kube_api: k8s.ApiClient, ns: str) -> None:
    created = await create_pod(kube_api, ns, simple_pod("plain", {"other": "x"}, {"app": "shop"}))
    assert created["metadata"]["labels"] == {"app": "shop"}
    assert created["metadata"]["annotations"] == {"other": "x"}
    assert [c["name"] for c in created["spec"]["containers"]] == ["app"]


async def test_a_pod_created_from_an_injected_one_is_not_injected_twice(kube_api: k8s.ApiClient, ns: str) -> None:
    first = await create_pod(kube_api, ns, simple_pod("first", {"goq.io/id": "orders"}))
    again = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "again",
            "labels": first["metadata"]["labels"],
            "annotations": first["metadata"]["annotations"],
        },
        "spec": {"containers": first["spec"]["containers"], "volumes": first["spec"]["volumes"]},
    }
    second = await create_pod(kube_api, ns, again)
    assert [c["name"] for c in second["spec"]["containers"]] == ["app", "goq-sidecar"]
    assert second["metadata"]["annotations"] == first["metadata"]["annotations"]


async def test_a_pod_with_a_bad_identity_is_refused_with_the_reason(kube_api: k8s.ApiClient, ns: str) -> None:
    with pytest.raises(ApiException) as refused:
        await create_pod(kube_api, ns, simple_pod("bad", {"goq.io/id": "Orders_V2"}))
    message = json.loads(refused.value.body)["message"]
    assert 'admission webhook "inject.goq.io" denied the request' in message
    assert "annotation goq.io/id 'Orders_V2'" in message
    assert "may contain only lower-case letters, digits and '-'" in message


async def test_the_validating_webhook_refuses_what_the_schema_cannot_express(kube_api: k8s.ApiClient, ns: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RetryPolicy",
        "metadata": {"name": "rushed"},
        "spec": {"initialBackoff": "1m", "maxBackoff": "30s"},
    }
    with pytest.raises(ApiException) as refused:
        await objects(kube_api).create_namespaced_custom_object(GROUP, VERSION, ns, "retrypolicies", body)
    message = json.loads(refused.value.body)["message"]
    assert "initialBackoff (1m) must not exceed maxBackoff (30s)" in message
    assert "RetryPolicy 'rushed' is invalid" in message


async def test_the_validating_webhook_refuses_a_max_age_beyond_the_dedupe_window(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RetryPolicy",
        "metadata": {"name": "stubborn"},
        "spec": {"maxAge": "3h"},
    }
    with pytest.raises(ApiException) as refused:
        await objects(kube_api).create_namespaced_custom_object(GROUP, VERSION, ns, "retrypolicies", body)
    message = json.loads(refused.value.body)["message"]
    assert (
        "RetryPolicy 'stubborn' is invalid: spec.maxAge (3h) exceeds the de-duplication window "
        "(2h, the operator's GOQ_DEDUPE_WINDOW)"
    ) in message
    assert "maxAge may be at most 2h" in message


async def test_an_identity_used_without_a_goqueue_gets_one_with_defaults(kube_api: k8s.ApiClient, ns: str) -> None:
    await create_pod(kube_api, ns, simple_pod("lonely-app", {"goq.io/id": "lonely"}))
    made = await eventually(lambda: read_goqueue(kube_api, ns, "lonely"))
    assert made is not None, "no GoQueue was made for identity lonely"
    assert made["spec"]["overflow"] == "poison"
    events = await events_until(kube_api, ns, "lonely-app", bool)
    assert {e.reason for e in events} == {"GoQueueCreated"}


async def test_a_pod_that_escaped_injection_is_reported_on_its_goqueue_and_as_an_event(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    await create_goqueue(kube_api, ns, "orders")
    # Pods labelled goq.io/injection=disabled are never sent to the webhook: as if it had been down.
    escaped = await create_pod(
        kube_api, ns, simple_pod("escaped", {"goq.io/id": "orders"}, {"goq.io/injection": "disabled"})
    )
    assert [c["name"] for c in escaped["spec"]["containers"]] == ["app"]

    async def reported() -> bool:
        return condition(await read_goqueue(kube_api, ns, "orders"), "Injected").get("reason") == "NotInjected"

    assert await eventually(reported)
    goqueue = await read_goqueue(kube_api, ns, "orders")
    assert goqueue is not None
    assert goqueue["status"]["notInjected"] == ["escaped"]

    def escaped_reported(found: list[k8s.CoreV1Event]) -> bool:
        return any(e.reason == "NotInjected" and "escaped" in e.message and e.type == "Warning" for e in found)

    assert escaped_reported(await events_until(kube_api, ns, "orders", escaped_reported))
    on_pod = await eventually(lambda: events_about(kube_api, ns, "escaped"))
    assert [(e.type, e.reason) for e in on_pod] == [("Warning", "NotInjected")]


async def test_an_escaped_pod_of_an_identity_without_a_goqueue_is_still_reported(
    kube_api: k8s.ApiClient, ns: str
) -> None:
    opted_out = {"goq.io/injection": "disabled"}
    await create_pod(kube_api, ns, simple_pod("stray", {"goq.io/id": "strays"}, opted_out))

    async def reported() -> bool:
        return condition(await read_goqueue(kube_api, ns, "strays"), "Injected").get("reason") == "NotInjected"

    assert await eventually(reported), "no default GoQueue reported the pod without the sidecar"


async def test_an_escaped_pod_with_an_invalid_identity_gets_a_warning_event(kube_api: k8s.ApiClient, ns: str) -> None:
    opted_out = {"goq.io/injection": "disabled"}
    await create_pod(kube_api, ns, simple_pod("odd", {"goq.io/id": "Not_Valid"}, opted_out))
    [event] = await eventually(lambda: events_about(kube_api, ns, "odd"))
    assert (event.type, event.reason) == ("Warning", "InvalidIdentity")
    assert "annotation goq.io/id 'Not_Valid' may contain only lower-case letters" in event.message


def kubectl(kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_heartbeats_show_in_kubectl_get_goqueues_and_a_silent_pod_turns_stale(
    kube_api: k8s.ApiClient, ns: str, kubeconfig: Path, sidecar_kube: KubeApi
) -> None:
    """More on the status (pods that cannot start or report, gone pods, 100 replicas): test_operator_pod_health."""
    await create_goqueue(kube_api, ns, "orders")
    await create_pod(kube_api, ns, simple_pod("orders-1", {"goq.io/id": "orders"}))
    await create_pod(kube_api, ns, simple_pod("orders-2", {"goq.io/id": "orders"}))
    reporter = StatusReporter(sidecar_kube, ns, "orders")
    beating = {
        "orders-1": PodFigures(ready=True, send_queue=3, receive_queue=4, delivered=50, poisoned=1),
        "orders-2": PodFigures(ready=True, send_queue=2, receive_queue=0, delivered=7, poisoned=0),
    }

    async def keep_beating(stop: asyncio.Event) -> None:
        while not stop.is_set():
            for pod, figures in list(beating.items()):
                await reporter.report(pod, figures)
            await asyncio.sleep(0.3)

    async def row() -> list[str]:
        return (await asyncio.to_thread(kubectl, kubeconfig, "get", "goqueues", "-n", ns)).split("\n")[1].split()

    stop = asyncio.Event()
    beat = asyncio.create_task(keep_beating(stop))
    try:

        async def shown() -> bool:
            return (await row())[:7] == ["orders", "2/2", "2", "5", "4", "57", "1"]

        assert await eventually(shown, within=20), await row()
        del beating["orders-2"]

        async def orders_2_stale() -> bool:
            goqueue = await read_goqueue(kube_api, ns, "orders")
            worst = ((goqueue or {}).get("status") or {}).get("worstPods") or []
            return [(w["pod"], w["reason"]) for w in worst] == [("orders-2", "PodStale")]

        assert await eventually(orders_2_stale, within=20)
    finally:
        stop.set()
        await beat
    goqueue = await read_goqueue(kube_api, ns, "orders")
    assert goqueue is not None
    assert goqueue["status"]["ready"] == "1/2"
    assert goqueue["status"]["delivered"] == 57  # a silent pod's last figures still count

    def stale_reported(found: list[k8s.CoreV1Event]) -> bool:
        return any(e.reason == "PodStale" and "orders-2" in e.message for e in found)

    assert stale_reported(await events_until(kube_api, ns, "orders", stale_reported))


async def test_a_goqueue_can_choose_its_own_sidecar_image_and_resources(kube_api: k8s.ApiClient, ns: str) -> None:
    sidecar = {"image": "example/goq-sidecar:orders", "resources": {"limits": {"memory": "512Mi"}}}
    await create_goqueue(kube_api, ns, "orders", {"sidecar": sidecar})
    assert await eventually(lambda: _ready_reason(kube_api, ns, "orders", "Reconciled"))
    created = await create_pod(kube_api, ns, simple_pod("custom", {"goq.io/id": "orders"}))
    [injected] = [c for c in created["spec"]["containers"] if c["name"] == "goq-sidecar"]
    assert injected["image"] == "example/goq-sidecar:orders"
    assert injected["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}}
