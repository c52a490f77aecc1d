"""The pod mutation (``goq.webhook``): pod and settings in, JSON Patch out; custom-resource validation.

Pure: no I/O, no Kubernetes client. Must not import ``goq.operator`` or ``goq.sidecar``; ``goq.cli``
plugs these functions into the operator's admission server.
"""

from goq.webhook.overrides import SidecarOverrides, split_spec
from goq.webhook.patching import InjectionRefusedError, JsonPatch, identity_of, injection_patch, is_injected
from goq.webhook.settings import InjectionSettings, supports_native_sidecars
from goq.webhook.validation import validate_custom_object

__all__ = [
    "InjectionRefusedError",
    "InjectionSettings",
    "JsonPatch",
    "SidecarOverrides",
    "identity_of",
    "injection_patch",
    "is_injected",
    "split_spec",
    "supports_native_sidecars",
    "validate_custom_object",
]
