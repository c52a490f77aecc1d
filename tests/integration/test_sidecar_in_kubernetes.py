"""A sidecar process in Kubernetes mode obeys its identity's GoQueue, follows changes without a restart,
and heartbeats its figures into its pod's Lease (real kube-apiserver, real MongoDB)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.client import AsyncClient, Outgoing, QueueFullError
from goq.devenv.sidecars import SidecarProcess
from goq.queue_status import PodFigures, lease_name

from .operator_kube import apply_crds, eventually, namespace

GROUP, VERSION = "goq.io", "v1alpha1"
Sidecars = Callable[..., dict[str, SidecarProcess]]


async def test_a_sidecar_obeys_and_follows_its_goqueue_and_reports_into_its_status(
    kube_api: k8s.ApiClient, kubeconfig: Path, sidecars: Sidecars
) -> None:
    await apply_crds(kube_api)
    objects = k8s.CustomObjectsApi(kube_api)
    async with namespace(kube_api, "sk") as ns:
        goqueue = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "GoQueue",
            "metadata": {"name": "orders"},
            "spec": {"sendQueueLimit": 3, "overflow": "reject"},
        }
        await objects.create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", goqueue)
        orders = sidecars(
            "orders",
            namespace=ns,
            GOQ_KUBERNETES="true",
            GOQ_KUBECONFIG=str(kubeconfig),
            GOQ_STATUS_INTERVAL="300ms",
        )["orders"]
        async with AsyncClient(orders.grpc_target) as app:
            # Its destination never runs, so the send queue only fills: the GoQueue's limit decides.
            results = await app.send_many([_to_nowhere(i) for i in range(5)])
            assert [type(r).__name__ for r in results] == ["Receipt"] * 3 + ["QueueFullError"] * 2
            assert isinstance(results[3], QueueFullError)
            assert "sendQueueLimit 3" in str(results[3])

            patch = {"spec": {"sendQueueLimit": 6}}
            await objects.patch_namespaced_custom_object(
                GROUP, VERSION, ns, "goqueues", "orders", patch, _content_type="application/merge-patch+json"
            )

            async def room_for_more() -> bool:
                try:
                    await app.send("nowhere", b"after the change")
                except QueueFullError:
                    return False
                return True

            assert await eventually(room_for_more, within=30), "the new limit was not followed without a restart"

        async def reported() -> dict[str, Any] | None:
            try:
                found = await k8s.CoordinationV1Api(kube_api).read_namespaced_lease(
                    lease_name("orders", "orders-0"), ns
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            lease: dict[str, Any] = kube_api.sanitize_for_serialization(found)
            figures = PodFigures.from_annotations(lease["metadata"]["annotations"])
            return lease if figures.send_queue == 4 else None

        lease = await eventually(reported, within=30)
        assert lease, "no heartbeat Lease with the send queue's figure"
        assert lease["metadata"]["annotations"]["goq.io/ready"] == "true"
        assert lease["spec"]["renewTime"]


def _to_nowhere(i: int) -> Outgoing:
    return Outgoing("nowhere", f"m{i}".encode())
