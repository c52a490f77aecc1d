"""Validation of GoQ's custom resources beyond what a Kubernetes 1.20 schema can say.

Pure: object in, ConfigError (naming the object, the field's path and what is allowed) out. The
shared validators are the single source of truth, so the webhook, the operator and the sidecars agree
on every rule (for example ``initialBackoff <= maxBackoff``, which a 1.20 schema cannot express).
"""

from collections.abc import Mapping
from typing import Any

from goq import names
from goq.errors import ConfigError
from goq.freshness import DEFAULT_DEDUPE_WINDOW, check_max_age
from goq.identity import validate_identity
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.webhook.overrides import SidecarOverrides, split_spec


def validate_custom_object(obj: Mapping[str, Any], dedupe_window: float = DEFAULT_DEDUPE_WINDOW) -> None:
    """Refuse a GoQueue or RetryPolicy whose name or spec breaks a rule; other kinds pass.

    ``dedupe_window`` is the sidecars' de-duplication window (the operator's ``GOQ_DEDUPE_WINDOW``): a
    RetryPolicy's ``maxAge`` may not exceed it (``goq.freshness.check_max_age``)."""
    kind = obj.get("kind")
    if kind not in (names.GOQUEUE_KIND, names.RETRYPOLICY_KIND):
        return
    meta = obj.get("metadata") or {}
    label = meta.get("name") or meta.get("generateName") or ""
    try:
        if meta.get("name"):  # generateName objects are named later; the schema's pattern checks them
            validate_identity(meta["name"], "the name")
        if kind == names.GOQUEUE_KIND:
            queue_spec, sidecar = split_spec(obj.get("spec"))
            GoQueueSpec.from_spec(queue_spec)
            SidecarOverrides.from_spec(sidecar)
        else:
            policy = RetryPolicy.from_spec(obj.get("spec"))
            check_max_age(policy.max_age, dedupe_window, "spec.maxAge", "the operator's GOQ_DEDUPE_WINDOW")
    except ConfigError as exc:
        raise ConfigError(f"{kind} {label!r} is invalid: {exc}") from exc
