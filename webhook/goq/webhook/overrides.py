"""A GoQueue's own sidecar image and resources (``spec.sidecar``), over the operator's defaults. Pure.

``spec.sidecar`` is read here, not by ``goq.queue_spec.GoQueueSpec``: it concerns the injection only,
so the validator and the sidecar's settings watcher set it aside before validating the rest.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from goq.errors import ConfigError
from goq.quantities import parse_quantity
from goq.specs import SpecReader
from goq.webhook.settings import InjectionSettings

SIDECAR_FIELD: Final = "sidecar"
RESOURCE_NAMES: Final = ("cpu", "ephemeral-storage", "memory")
"""The resources a sidecar container may request: the API server also knows hugepages and extended
resources, which need rules (request equal to limit, integers) that make no sense for GoQ's sidecar."""


@dataclass(frozen=True)
class SidecarOverrides:
    """What a GoQueue sets for its sidecars; ``None``: the operator's setting."""

    image: str | None = None
    requests: dict[str, str] | None = None
    limits: dict[str, str] | None = None

    @classmethod
    def from_spec(cls, sidecar: object, path: str = "spec.sidecar") -> "SidecarOverrides":
        """Validate ``spec.sidecar``; unknown fields and non-string quantities are refused."""
        r = SpecReader(sidecar, path)
        resources = r.child("resources")
        image = r.text("image")
        if image is not None and (image != image.strip() or any(c.isspace() for c in image)):
            raise ConfigError(f"{r.field('image')} must be an image reference without spaces, got {image!r}")
        result = cls(
            image=image,
            requests=_quantities(resources.raw("requests"), resources.field("requests")),
            limits=_quantities(resources.raw("limits"), resources.field("limits")),
        )
        resources.reject_unknown()
        r.reject_unknown()
        return result

    def check_resources(self, settings: InjectionSettings, path: str = "spec.sidecar.resources") -> None:
        """Refuse requests above limits in the container the webhook would make from ``settings`` (the
        operator's) with these overrides; the API server would refuse every pod of the identity."""
        applied = self.apply_to(settings)
        for name, request in applied.requests.items():
            limit = applied.limits.get(name)
            if limit is None or parse_quantity(request, name) <= parse_quantity(limit, name):
                continue
            request_from = f"{path}.requests" if self.requests is not None else "the operator's GOQ_SIDECAR_REQUESTS"
            limit_from = f"{path}.limits" if self.limits is not None else "the operator's GOQ_SIDECAR_LIMITS"
            raise ConfigError(
                f"{path}: the {name} request {request!r} ({request_from}) exceeds the {name} limit {limit!r} "
                f"({limit_from}); a request must be at most its limit, or every pod of this identity is refused"
            )

    def apply_to(self, settings: InjectionSettings) -> InjectionSettings:
        """``settings`` with what this GoQueue sets."""
        changes: dict[str, Any] = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return dataclasses.replace(settings, **changes) if changes else settings


def _quantities(value: object, path: str) -> dict[str, str] | None:
    """A map of resource name to quantity, each checked as the API server will check it in the pod."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(
            f"{path} must map resource names to quantities as strings, e.g. {{cpu: '50m'}}, got {value!r}"
        )
    for name, quantity in value.items():
        if name not in RESOURCE_NAMES:
            raise ConfigError(f"{path} names the resource {name!r}; a sidecar may set {', '.join(RESOURCE_NAMES)}")
        parse_quantity(quantity, f"{path}.{name}")
    return dict(value)


def split_spec(spec: object) -> tuple[object, object]:
    """(the spec without ``sidecar``, the ``sidecar`` part), for validating each with its own reader."""
    if not isinstance(spec, Mapping):
        return spec, None
    return {k: v for k, v in spec.items() if k != SIDECAR_FIELD}, spec.get(SIDECAR_FIELD)
