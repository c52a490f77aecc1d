"""The GoQueue spec: what the operator validates and every sidecar of the identity obeys."""

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from goq.access import AllowFrom, parse_allow_from
from goq.errors import ConfigError
from goq.identity import validate_identity
from goq.specs import SpecReader

QUEUE_LIMIT_MAX: Final = 10_000_000
MESSAGE_SIZE_MAX: Final = 4 * 1024**3
"""The largest message GoQ carries: 4,294,967,296 bytes."""
DEFAULT_MAX_MESSAGE_SIZE: Final = 64 * 1024**2
_QUANTITY: Final = re.compile(r"([0-9]+)(Ki|Mi|Gi|k|M|G)?")
_UNITS: Final = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "k": 1000, "M": 1000**2, "G": 1000**3}
BUILTIN_POISON_SINKS: Final = ("mongodb", "file", "http", "log")
BUILTIN_METRICS_SINKS: Final = ("prometheus", "pushgateway", "log", "mongodb")


class Overflow(StrEnum):
    """What happens to a message that does not fit its bounded queue."""

    POISON = "poison"
    """Goes to the poison queue with reason ``overflow`` (the default)."""
    REJECT = "reject"
    """Refused with backpressure: HTTP 429, gRPC RESOURCE_EXHAUSTED."""


@dataclass(frozen=True)
class SinkSpec:
    """A pluggable sink: a built-in or entry-point name, and its own options."""

    type: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: object, path: str) -> "SinkSpec":
        r = SpecReader(spec, path)
        name = r.text("type")
        if name is None:
            raise ConfigError(f"{path}.type is required (a built-in sink or a plug-in's entry-point name)")
        options = {k: v for k, v in r.data.items() if k != "type"}
        return cls(name, options)


@dataclass(frozen=True)
class MetricsSpec:
    """Where and how often a sidecar flushes its metrics."""

    interval: float = 15.0
    sinks: tuple[SinkSpec, ...] = (SinkSpec("prometheus"),)


@dataclass(frozen=True)
class GoQueueSpec:
    """One identity's queue settings (the GoQueue's ``spec``)."""

    retry_policy: str | None = None
    """Name of a RetryPolicy in the same namespace; ``None``: the built-in defaults."""
    send_queue_limit: int = 10_000
    receive_queue_limit: int = 10_000
    overflow: Overflow = Overflow.POISON
    poison_queue: SinkSpec = SinkSpec("mongodb")
    metrics: MetricsSpec = MetricsSpec()
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """Largest payload, in bytes, a sidecar of this identity accepts (to send and from peers)."""
    allow_from: AllowFrom = None
    """Who may send to this identity (``goq.access``): ``None``, anyone; a tuple, only those; empty, nobody."""

    @classmethod
    def from_spec(cls, spec: object, path: str = "spec") -> "GoQueueSpec":
        """Validate a GoQueue spec; defaults fill what is missing; unknown fields are refused."""
        r = SpecReader(spec, path)
        d = cls()
        policy = r.text("retryPolicy")
        if policy is not None:
            validate_identity(policy, f"{r.field('retryPolicy')} (a RetryPolicy name)")
        metrics = r.child("metrics")
        sinks_raw = metrics.raw("sinks")
        if sinks_raw is None:
            sinks = d.metrics.sinks
        elif isinstance(sinks_raw, list) and sinks_raw:
            sinks = tuple(SinkSpec.from_spec(s, f"{metrics.field('sinks')}[{i}]") for i, s in enumerate(sinks_raw))
        else:
            raise ConfigError(f"{metrics.field('sinks')} must be a non-empty list of sinks, got {sinks_raw!r}")
        result = cls(
            retry_policy=policy,
            send_queue_limit=r.integer("sendQueueLimit", d.send_queue_limit, 1, QUEUE_LIMIT_MAX),
            receive_queue_limit=r.integer("receiveQueueLimit", d.receive_queue_limit, 1, QUEUE_LIMIT_MAX),
            overflow=Overflow(r.choice("overflow", d.overflow.value, tuple(o.value for o in Overflow))),
            poison_queue=(
                SinkSpec.from_spec(r.raw("poisonQueue"), r.field("poisonQueue"))
                if r.data.get("poisonQueue") is not None
                else d.poison_queue
            ),
            metrics=MetricsSpec(interval=metrics.duration("interval", d.metrics.interval, 1.0, 3600.0), sinks=sinks),
            max_message_size=parse_size(r.raw("maxMessageSize"), r.field("maxMessageSize"), d.max_message_size),
            allow_from=parse_allow_from(r.raw("allowFrom"), r.field("allowFrom")),
        )
        metrics.reject_unknown()
        r.reject_unknown()
        return result


def parse_size(value: object, path: str, default: int) -> int:
    """A byte count: an integer, or a Kubernetes-style quantity string (``512Ki``, ``64Mi``, ``4Gi``,
    ``10M``); from 1 byte to ``MESSAGE_SIZE_MAX``."""
    if value is None:
        return default
    size = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _QUANTITY.fullmatch(value)):
        size = int(match[1]) * _UNITS[match[2]]
    if size is None or not 1 <= size <= MESSAGE_SIZE_MAX:
        raise ConfigError(
            f"{path} must be a size from 1 byte to 4Gi ({MESSAGE_SIZE_MAX} bytes): an integer or a quantity "
            f"such as 512Ki, 64Mi or 1Gi, got {value!r}"
        )
    return size
