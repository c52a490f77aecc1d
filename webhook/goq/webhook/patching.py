"""Pod in, JSON Patch out: the sidecar injection itself. Pure; the admission server calls it.

Only adds, never overrides: a container, volume, label or annotation the user set stays as it is, and
a pod that already carries ``goq.io/injected`` (or a container named ``goq-sidecar``) is left alone, so
applying the patch twice changes nothing.
"""

from collections.abc import Mapping
from typing import Any, Final

from goq import names
from goq.errors import ConfigError
from goq.identity import validate_identity
from goq.webhook.container import sidecar_container, sidecar_volumes
from goq.webhook.settings import CONTAINER_NAME, InjectionSettings

JsonPatch = list[dict[str, Any]]

SCRAPE_PREFIX: Final = "prometheus.io/"
SCRAPE_ANNOTATIONS: Final = {
    f"{SCRAPE_PREFIX}scrape": "true",
    f"{SCRAPE_PREFIX}port": str(names.PORT_HEALTH),
    f"{SCRAPE_PREFIX}path": "/metrics",
}
"""The common Prometheus convention, which names one target per pod: added only to a pod with no
``prometheus.io/`` annotation of its own (it is then the application's; a PodMonitor scrapes both)."""


class InjectionRefusedError(ConfigError):
    """The pod asks for GoQ but cannot have it as written; the message goes back to the user."""


def _escape(key: str) -> str:
    """A map key as a JSON Pointer segment (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def identity_of(pod: Mapping[str, Any]) -> str | None:
    """The pod's ``goq.io/id`` annotation, or ``None`` when it did not opt in."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(names.ANNOTATION_ID)
    return None if value is None else str(value)


def is_injected(pod: Mapping[str, Any]) -> bool:
    """Whether the pod already has GoQ's sidecar (by annotation or by container name)."""
    metadata = pod.get("metadata") or {}
    if names.ANNOTATION_INJECTED in (metadata.get("annotations") or {}):
        return True
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return any(c.get("name") == CONTAINER_NAME for c in containers)


def _add_to_map(patch: JsonPatch, parent: str, current: Mapping[str, Any] | None, key: str, value: str) -> None:
    if current is None:
        patch.append({"op": "add", "path": parent, "value": {key: value}})
    elif key not in current:
        patch.append({"op": "add", "path": f"{parent}/{_escape(key)}", "value": value})


def injection_patch(pod: Mapping[str, Any], settings: InjectionSettings) -> JsonPatch:
    """The JSON Patch that injects GoQ into ``pod``: empty for pods that did not opt in or have it already.

    Raises InjectionRefusedError (with a message for the user) for an invalid identity, or a ``goq.io/id``
    label that contradicts the annotation.
    """
    raw = identity_of(pod)
    if raw is None or is_injected(pod):
        return []
    try:
        identity = validate_identity(raw, f"annotation {names.ANNOTATION_ID}")
    except ConfigError as exc:
        raise InjectionRefusedError(f"GoQ cannot inject its sidecar: {exc}") from exc
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels")
    if labels is not None and labels.get(names.LABEL_ID) not in (None, identity):
        raise InjectionRefusedError(
            f"GoQ cannot inject its sidecar: label {names.LABEL_ID}={labels[names.LABEL_ID]!r} contradicts "
            f"annotation {names.ANNOTATION_ID}={identity!r}; remove the label or make them equal"
        )
    spec = pod.get("spec") or {}
    patch: JsonPatch = []
    _add_to_map(patch, "/metadata/labels", labels, names.LABEL_ID, identity)
    annotations = metadata.get("annotations")
    added = {names.ANNOTATION_INJECTED: settings.version}
    if not any(key.startswith(SCRAPE_PREFIX) for key in annotations or {}):
        added.update(SCRAPE_ANNOTATIONS)
    if annotations is None:
        patch.append({"op": "add", "path": "/metadata/annotations", "value": added})
    else:
        for key, value in added.items():
            _add_to_map(patch, "/metadata/annotations", annotations, key, value)

    container = sidecar_container(identity, settings)
    if settings.native_sidecar:
        # First among the init containers, so that the others may already send messages.
        if spec.get("initContainers"):
            patch.append({"op": "add", "path": "/spec/initContainers/0", "value": container})
        else:
            patch.append({"op": "add", "path": "/spec/initContainers", "value": [container]})
    else:
        patch.append({"op": "add", "path": "/spec/containers/-", "value": container})

    existing = {v.get("name") for v in spec.get("volumes") or []}
    missing = [v for v in sidecar_volumes(settings, identity) if v["name"] not in existing]
    if not spec.get("volumes"):
        patch.append({"op": "add", "path": "/spec/volumes", "value": missing})
    else:
        patch.extend({"op": "add", "path": "/spec/volumes/-", "value": v} for v in missing)
    return patch
