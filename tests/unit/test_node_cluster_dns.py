"""The node's cluster DNS: which names it answers, from a listing of Services and Endpoints."""

from typing import Any

from goq.devenv.node.cluster_dns import records


def _service(name: str, namespace: str, cluster_ip: str, kind: str = "ClusterIP") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"clusterIP": cluster_ip, "type": kind}}


def _endpoints(name: str, namespace: str, ready: list[dict[str, str]], not_ready: list[str]) -> dict[str, Any]:
    subset = {"addresses": ready, "notReadyAddresses": [{"ip": ip} for ip in not_ready]}
    return {"metadata": {"name": name, "namespace": namespace}, "subsets": [subset]}


def test_a_service_is_its_cluster_ip_and_a_headless_one_its_ready_endpoints() -> None:
    services = {
        "items": [
            _service("kubernetes", "default", "198.19.0.1"),
            _service("goq-billing", "shop", "None"),
            _service("goq-idle", "shop", "None"),
            _service("elsewhere", "shop", "", kind="ExternalName"),
        ]
    }
    endpoints = {
        "items": [
            _endpoints(
                "goq-billing", "shop", [{"ip": "198.18.1.7"}, {"ip": "198.18.1.6", "hostname": "b-0"}], ["198.18.1.9"]
            ),
            _endpoints("kubernetes", "default", [{"ip": "198.18.0.1"}], []),
        ]
    }
    found = records(services, endpoints, "cluster.local")
    assert found == {
        "kubernetes.default.svc.cluster.local": ["198.19.0.1"],
        "goq-billing.shop.svc.cluster.local": ["198.18.1.6", "198.18.1.7"],  # not the pod that is not ready
        "b-0.goq-billing.shop.svc.cluster.local": ["198.18.1.6"],
        "goq-idle.shop.svc.cluster.local": [],  # known, no address: an empty answer, not NXDOMAIN
    }
