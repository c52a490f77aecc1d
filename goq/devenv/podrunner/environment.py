"""What a container's process sees in its environment, resolved as a kubelet would, then adapted.

``env`` entries are resolved in order: values (with ``$(VAR)`` references to earlier ones), the
downward API (``fieldRef``), ``secretKeyRef`` and ``configMapKeyRef``; ``envFrom`` comes first. Then
the local adaptation: every pod shares this machine's network, so the GoQ sidecar listens on its pod's
address instead of 127.0.0.1 and finds peers through the runner's DNS responder, and every container
learns where its sidecar is (``GOQ_SIDECAR``, read by ``goq.client`` and ``goqctl``).
"""

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from goq.devenv.podrunner.volumes import MissingObjectError, ObjectReader, rewrite
from goq.names import PORT_GRPC, PORT_HEALTH, PORT_PEER, PORT_REST

_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ", "GOQ_CACHE")
"""What a container inherits from the runner's own environment (as an image would bring its own)."""


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """The downward API: ``metadata.name``, ``metadata.labels['x']``, ``status.podIP`` and the like."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    if match := re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path):
        return str((meta.get(match[1]) or {}).get(match[2], ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
    }
    return str(simple.get(path) or "")


def _expand(value: str, env: Mapping[str, str]) -> str:
    return _REFERENCE.sub(lambda m: env.get(m[1], m[0]), value)


async def _key(reader: ObjectReader, namespace: str, ref: Mapping[str, Any], secret: bool) -> str | None:
    try:
        if secret:
            data = await reader.secret(namespace, ref["name"])
            value = data.get(ref["key"])
            text = value.decode() if value is not None else None
        else:
            text = (await reader.config_map(namespace, ref["name"])).get(ref["key"])
    except MissingObjectError:
        if ref.get("optional"):
            return None
        raise
    if text is None and not ref.get("optional"):
        kind = "Secret" if secret else "ConfigMap"
        raise MissingObjectError(f"key {ref['key']!r} is not in {kind} {namespace}/{ref['name']}")
    return text


async def container_env(
    reader: ObjectReader, pod: Mapping[str, Any], container: Mapping[str, Any], mounted: Mapping[str, Path]
) -> dict[str, str]:
    """The container's own environment as the pod spec defines it; raises MissingObjectError."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if ref := source.get("secretRef"):
            env |= {prefix + k: v.decode() for k, v in (await reader.secret(namespace, ref["name"])).items()}
        if ref := source.get("configMapRef"):
            env |= {prefix + k: v for k, v in (await reader.config_map(namespace, ref["name"])).items()}
    for item in container.get("env") or []:
        name, source = item["name"], item.get("valueFrom") or {}
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source:
            value = await _key(reader, namespace, source["secretKeyRef"], secret=True)
        elif "configMapKeyRef" in source:
            value = await _key(reader, namespace, source["configMapKeyRef"], secret=False)
        else:
            value = _expand(str(item.get("value", "")), env)
        if value is not None:
            env[name] = rewrite(value, mounted)
    return env


def sidecar_network(pod_ip: str, dns_server: str, kubeconfig: str | None) -> dict[str, str]:
    """The sidecar's local adaptation: its ports on the pod's address, peers through the runner's DNS."""
    env = {
        "GOQ_REST_LISTEN": f"{pod_ip}:{PORT_REST}",
        "GOQ_GRPC_LISTEN": f"{pod_ip}:{PORT_GRPC}",
        "GOQ_PEER_LISTEN": f"{pod_ip}:{PORT_PEER}",
        "GOQ_HEALTH_LISTEN": f"{pod_ip}:{PORT_HEALTH}",
        "GOQ_DNS_SERVER": dns_server,
    }
    if kubeconfig:
        env |= {"GOQ_KUBERNETES": "true", "GOQ_KUBECONFIG": kubeconfig}
    return env


def process_env(
    pod: Mapping[str, Any],
    own: Mapping[str, str],
    *,
    home: str,
    sidecar_target: str | None,
    kubeconfig: str | None,
    adaptation: Mapping[str, str],
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The whole environment of the process: a small base, the pod's own, then the local adaptation."""
    base = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
    base |= {"HOME": home, "HOSTNAME": str(pod["metadata"]["name"]), "PYTHONUNBUFFERED": "1"}
    if kubeconfig:
        base["KUBECONFIG"] = kubeconfig
    if sidecar_target:
        base["GOQ_SIDECAR"] = sidecar_target
    return {**base, **extra, **own, **adaptation}
