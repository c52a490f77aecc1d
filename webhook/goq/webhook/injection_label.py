"""The ``goq.io/injection`` label: checked when it is set, because a mistyped value fails silently.

The webhook registrations select on its exact values (``disabled``: never sent; ``required``: sent to an entry
with ``failurePolicy: Fail``). ``Required`` or ``enabled`` would match neither, and the namespace's pods would
quietly get the lenient ``Ignore`` entry: the operator refuses such a namespace or pod at admission instead.
"""

from collections.abc import Mapping
from typing import Any, Final

from goq import names
from goq.errors import ConfigError

INJECTION_VALUES: Final = (names.INJECTION_DISABLED, names.INJECTION_REQUIRED)
NAMESPACE_KIND: Final = "Namespace"


def check_injection_label(obj: Mapping[str, Any], what: str) -> None:
    """Refuse ``obj`` (a pod or a namespace, ``what`` names it for the user) whose ``goq.io/injection`` label
    is set to anything but ``disabled`` or ``required``."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(names.LABEL_INJECTION)
    if value is None or value in INJECTION_VALUES:
        return
    raise ConfigError(
        f"{what}: label {names.LABEL_INJECTION}={value!r} is not a value GoQ knows; use "
        f"{names.LABEL_INJECTION}={names.INJECTION_DISABLED} (no sidecar injection) or "
        f"{names.LABEL_INJECTION}={names.INJECTION_REQUIRED} (pods are created only with their sidecar), "
        "or remove the label (pods with goq.io/id get the sidecar when the operator answers)"
    )


def validate_namespace(obj: Mapping[str, Any]) -> None:
    """The namespace webhook's validator: a Namespace with a wrong ``goq.io/injection`` value is refused."""
    if obj.get("kind") == NAMESPACE_KIND:
        check_injection_label(obj, f"namespace {(obj.get('metadata') or {}).get('name') or ''!r}")
