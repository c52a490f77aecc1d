"""Validation of GoQ's custom resources beyond what a Kubernetes 1.20 schema can say.

Pure: object in, ConfigError (naming the object, the field's path and what is allowed) out, or the
warnings to show the user. The shared validators are the single source of truth, so the webhook, the
operator and the sidecars agree on every rule (for example ``initialBackoff <= maxBackoff``, which a 1.20
schema cannot express; a built-in sink's options, ``goq.sink_options``, which the sinks check too).
"""

from collections.abc import Mapping
from typing import Any, Final

from goq import names
from goq.errors import ConfigError
from goq.freshness import DEFAULT_DEDUPE_WINDOW, check_max_age
from goq.identity import validate_identity
from goq.queue_spec import GoQueueSpec, SinkSpec
from goq.retry import RetryPolicy
from goq.sink_options import BUILTIN, ENTRY_POINT_GROUPS, METRICS, POISON, Kind, check_sink, is_builtin
from goq.webhook.overrides import SidecarOverrides, split_spec
from goq.webhook.settings import InjectionSettings

STOCK_IMAGE: Final = "goq/goq-sidecar"
"""GoQ's own sidecar image (any tag or digest): it has the built-in sinks and no plug-ins."""


def validate_custom_object(
    obj: Mapping[str, Any],
    dedupe_window: float = DEFAULT_DEDUPE_WINDOW,
    sidecar: InjectionSettings | None = None,
) -> list[str]:
    """Refuse a GoQueue or RetryPolicy whose name or spec breaks a rule; other kinds pass. Returns warnings
    for what cannot be checked here (a plug-in sink the sidecar image may or may not have).

    ``dedupe_window`` is the sidecars' de-duplication window (the operator's ``GOQ_DEDUPE_WINDOW``): a
    RetryPolicy's ``maxAge`` may not exceed it (``goq.freshness.check_max_age``). ``sidecar`` is what the
    operator injects (image, requests, limits) before a GoQueue's ``spec.sidecar`` applies."""
    kind = obj.get("kind")
    if kind not in (names.GOQUEUE_KIND, names.RETRYPOLICY_KIND):
        return []
    meta = obj.get("metadata") or {}
    label = meta.get("name") or meta.get("generateName") or ""
    try:
        if meta.get("name"):  # generateName objects are named later; the schema's pattern checks them
            validate_identity(meta["name"], "the name")
        if kind == names.RETRYPOLICY_KIND:
            policy = RetryPolicy.from_spec(obj.get("spec"))
            check_max_age(policy.max_age, dedupe_window, "spec.maxAge", "the operator's GOQ_DEDUPE_WINDOW")
            return []
        queue_raw, sidecar_raw = split_spec(obj.get("spec"))
        queue = GoQueueSpec.from_spec(queue_raw)
        overrides = SidecarOverrides.from_spec(sidecar_raw)
        injected = overrides.apply_to(sidecar or InjectionSettings())
        overrides.check_resources(sidecar or InjectionSettings())
        sinks = [(POISON, "spec.poisonQueue", queue.poison_queue)]
        sinks += [(METRICS, f"spec.metrics.sinks[{i}]", s) for i, s in enumerate(queue.metrics.sinks)]
        return [w for k, path, s in sinks if (w := _check_sink(k, path, s, injected.image))]
    except ConfigError as exc:
        raise ConfigError(f"{kind} {label!r} is invalid: {exc}") from exc


def _check_sink(kind: Kind, path: str, sink: SinkSpec, image: str) -> str | None:
    """Refuse a built-in sink's bad options, and a plug-in the stock image cannot have; warn about other
    plug-ins (the operator cannot see inside the sidecar image)."""
    if is_builtin(kind, sink.type):
        try:
            check_sink(kind, sink.type, sink.options)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        return None
    builtins = ", ".join(BUILTIN[kind])
    group = ENTRY_POINT_GROUPS[kind]
    if _is_stock(image):
        raise ConfigError(
            f"{path}.type {sink.type!r} is not a {kind} of the sidecar image {image}, which has {builtins}; "
            f"a plug-in (entry point group {group!r}) needs a sidecar image that installs it (spec.sidecar.image)"
        )
    return (
        f"{path}.type {sink.type!r} is not a built-in {kind} ({builtins}): the operator cannot check that the "
        f"sidecar image {image} installs it (entry point group {group!r}) or its options; if it does not, this "
        f"identity's sidecars fail to start"
    )


def _is_stock(image: str) -> bool:
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    return repository in (STOCK_IMAGE, f"docker.io/{STOCK_IMAGE}")
