"""The PodMonitor example points at what GoQ really serves: the injected sidecar's health port by its name,
pods by the label the webhook adds, and the operator's pods and webhook port as the install names them."""

from pathlib import Path
from typing import Any

import yaml

from goq import names
from goq.webhook import InjectionSettings, injection_patch
from goq.webhook.container import PORTS

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def monitors() -> dict[str, dict[str, Any]]:
    documents = yaml.safe_load_all((MANIFESTS / "monitoring" / "podmonitor.yaml").read_text())
    found = {d["metadata"]["name"]: d for d in documents}
    assert {d["kind"] for d in found.values()} == {"PodMonitor"}
    return found


def test_the_sidecar_monitor_selects_injected_pods_by_label_and_scrapes_the_health_port() -> None:
    sidecars = monitors()["goq-sidecars"]["spec"]
    assert sidecars["namespaceSelector"] == {"any": True}
    assert sidecars["selector"]["matchExpressions"] == [{"key": names.LABEL_ID, "operator": "Exists"}]
    [endpoint] = sidecars["podMetricsEndpoints"]
    assert dict(PORTS)[endpoint["port"]] == names.PORT_HEALTH
    assert endpoint["path"] == "/metrics"
    pod = {"metadata": {"name": "a", "annotations": {names.ANNOTATION_ID: "orders"}}, "spec": {"containers": []}}
    added = [op for op in injection_patch(pod, InjectionSettings()) if op["path"].startswith("/metadata/labels")]
    assert added == [{"op": "add", "path": "/metadata/labels", "value": {names.LABEL_ID: "orders"}}]


def test_the_operator_monitor_matches_the_installed_operators_labels_and_port() -> None:
    operator = monitors()["goq-operator"]["spec"]
    deployment = next(
        d for d in yaml.safe_load_all((MANIFESTS / "operator.yaml").read_text()) if d and d["kind"] == "Deployment"
    )
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert operator["selector"]["matchLabels"].items() <= labels.items()
    [endpoint] = operator["podMetricsEndpoints"]
    ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
    assert endpoint["port"] in ports
    assert (endpoint["scheme"], endpoint["path"]) == ("https", "/metrics")
