"""A GoQueue's own sidecar image and resources (``spec.sidecar``), over the operator's defaults. Pure.

``spec.sidecar`` is read here, not by ``goq.queue_spec.GoQueueSpec``: it concerns the injection only,
so the validator and the sidecar's settings watcher set it aside before validating the rest.
"""

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from goq.errors import ConfigError
from goq.specs import SpecReader
from goq.webhook.settings import InjectionSettings

SIDECAR_FIELD: Final = "sidecar"


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
        result = cls(
            image=r.text("image"),
            requests=_quantities(resources.raw("requests"), resources.field("requests")),
            limits=_quantities(resources.raw("limits"), resources.field("limits")),
        )
        resources.reject_unknown()
        r.reject_unknown()
        return result

    def apply_to(self, settings: InjectionSettings) -> InjectionSettings:
        """``settings`` with what this GoQueue sets."""
        changes: dict[str, Any] = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return dataclasses.replace(settings, **changes) if changes else settings


def _quantities(value: object, path: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(
            f"{path} must map resource names to quantities as strings, e.g. {{cpu: '50m'}}, got {value!r}"
        )
    return dict(value)


def split_spec(spec: object) -> tuple[object, object]:
    """(the spec without ``sidecar``, the ``sidecar`` part), for validating each with its own reader."""
    if not isinstance(spec, Mapping):
        return spec, None
    return {k: v for k, v in spec.items() if k != SIDECAR_FIELD}, spec.get(SIDECAR_FIELD)
