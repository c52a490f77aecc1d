"""GoQ installed as users install it, on the real node: ``kubectl apply -k manifests/`` (through the overlay of
``goq.devenv.node.install``), two operator pods with a leader Lease, webhooks that the API server calls through
the Service ``goq-webhook``, and the shop example (``examples/shop/shop.yaml``, its images built here) whose
unmodified programs find each other through the node's cluster DNS, with MongoDB a process of the node."""

import json
import re
import time
from typing import Any

from goq.devenv.errors import DevEnvError
from goq.devenv.node import dockerfiles
from goq.devenv.node.cluster import OPERATOR_NAMESPACE, SHOP_NAMESPACE, GoQCluster
from goq.webhook.settings import CONTAINER_NAME

from .conftest import ready

ORDERS = 5
LEADER_LEASE = "goq-operator-leader"


def operator_pods(cluster: GoQCluster) -> list[dict[str, Any]]:
    listing = cluster.kubectl(
        "-n", OPERATOR_NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/name=goq-operator", "-o", "json"
    )
    return list(json.loads(listing)["items"])


def until(what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(interval)
    return result


def refusal(cluster: GoQCluster, obj: dict[str, Any]) -> str:
    """The error applying ``obj`` fails with ("" if it was admitted)."""
    try:
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
    except DevEnvError as exc:
        return str(exc)
    cluster.kubectl("delete", "-f", "-", stdin=json.dumps(obj), check=False)
    return ""


def test_two_operator_pods_run_from_the_built_image_one_leads_and_the_webhooks_go_through_the_service(
    goq_cluster: GoQCluster,
) -> None:
    pods = until(
        "two operator pods Ready", lambda: len(r := [p for p in operator_pods(goq_cluster) if ready(p)]) == 2 and r, 120
    )
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {dockerfiles.OPERATOR_IMAGE}
    assert {p["spec"]["nodeName"] for p in pods} == {goq_cluster.node.name}
    lease = json.loads(goq_cluster.kubectl("-n", OPERATOR_NAMESPACE, "get", "lease", LEADER_LEASE, "-o", "json"))
    holder = lease["spec"].get("holderIdentity") or ""
    assert any(holder.startswith(p["metadata"]["name"]) for p in pods), f"the leader {holder!r} is no operator pod"
    pdb = json.loads(goq_cluster.kubectl("-n", OPERATOR_NAMESPACE, "get", "pdb", "goq-operator", "-o", "json"))
    assert pdb["status"]["currentHealthy"] == 2

    # The operator registers its webhooks by the Service, never by a URL: the API server resolves it.
    registered = goq_cluster.kubectl("get", "mutatingwebhookconfiguration", "goq-sidecar-injector", "-o", "json")
    webhooks = json.loads(registered)["webhooks"]  # the default entry and the strict ones (goq.io/injection=required)
    assert {w["name"] for w in webhooks} == {"inject.goq.io", "inject-required.goq.io", "inject-required-pod.goq.io"}
    assert all("url" not in w["clientConfig"] for w in webhooks)
    assert {w["clientConfig"]["service"]["name"] for w in webhooks} == {"goq-webhook"}
    # The validating webhook (failurePolicy Fail) answers through the Service: a RetryPolicy it must refuse.
    too_old = {
        "apiVersion": "goq.io/v1alpha1",
        "kind": "RetryPolicy",
        "metadata": {"name": "too-old", "namespace": "default"},
        "spec": {"maxAttempts": 3, "maxAge": "30h"},
    }
    refused = until(
        "the validating webhook answering", lambda: "denied" in (e := refusal(goq_cluster, too_old)) and e, 60
    )
    assert 'admission webhook "validate.goq.io" denied' in refused


def test_the_shop_example_as_applied_by_users_is_injected_and_delivers_through_cluster_dns(
    goq_cluster: GoQCluster,
) -> None:
    """examples/shop/shop.yaml as is (but for its images): the operator provides its namespace's Secrets."""
    goq_cluster.apply_shop(orders=ORDERS)
    try:
        listed = json.loads(goq_cluster.kubectl("-n", SHOP_NAMESPACE, "get", "pods", "-o", "json"))["items"]
        pods = {p["metadata"]["labels"]["app"]: p for p in listed if not p["metadata"].get("deletionTimestamp")}
        for app, pod in pods.items():
            containers = [c["name"] for c in pod["spec"]["containers"]]
            assert containers == ["app", CONTAINER_NAME], f"{app}: the webhook did not inject the sidecar: {containers}"

        # Cluster DNS: the app's resolver is the node's add-on, and billing's Service names billing's pod.
        exec_app = ("-n", SHOP_NAMESPACE, "exec", "deploy/orders", "-c", "app", "--", "python", "-c")
        resolv = goq_cluster.kubectl(*exec_app, "print(open('/etc/resolv.conf').read())")
        assert f"nameserver {goq_cluster.node.dns_address}" in resolv
        lookup = "import socket; print(socket.gethostbyname('goq-billing.shop.svc.cluster.local'))"
        assert goq_cluster.kubectl(*exec_app, lookup).strip() == pods["billing"]["status"]["podIP"]

        def invoiced() -> set[int]:
            logs = goq_cluster.kubectl("-n", SHOP_NAMESPACE, "logs", "deploy/billing", "-c", "app", check=False)
            return {int(m) for m in re.findall(r"invoiced order (\d+) from orders", logs)}

        done = until(
            f"billing invoicing all {ORDERS} orders", lambda: (f := invoiced()) >= set(range(1, ORDERS + 1)) and f, 120
        )
        assert done == set(range(1, ORDERS + 1))
    finally:
        goq_cluster.kubectl("delete", "namespace", SHOP_NAMESPACE, "--wait=false", check=False)
