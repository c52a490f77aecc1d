"""The options each built-in poison and metrics sink takes: one table for the sidecar and the webhook.

Why here: the sidecar's sinks check their options when they start, and the operator's validating webhook
checks a GoQueue's sinks when it is applied; both call ``check_sink`` with this table, so a GoQueue the
webhook admits never fails in the sidecar for its options, and the rules cannot drift apart. A plug-in
(a type not in the table) checks its own options when the sidecar loads it: the operator cannot know
which plug-ins the sidecar image has, so the webhook only warns about such a type (docs/operator.md).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from goq.errors import ConfigError

Kind = Literal["poison sink", "metrics sink"]
POISON: Final[Kind] = "poison sink"
METRICS: Final[Kind] = "metrics sink"
ENTRY_POINT_GROUPS: Final[Mapping[Kind, str]] = {POISON: "goq.poison_sinks", METRICS: "goq.metrics_sinks"}


@dataclass(frozen=True)
class Option:
    """One option: its type (``text``, ``url``: http:// or https://, ``integer``, ``number``), whether it is
    required, and the smallest allowed value for numbers."""

    name: str
    type: Literal["text", "url", "integer", "number"]
    required: bool = False
    minimum: float | None = None
    exclusive_minimum: bool = False

    def check(self, value: object, where: str) -> None:
        """Refuse ``value`` with a message naming the option and what it allows."""
        label = f"{where} option {self.name}"
        if self.type in ("text", "url"):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{label} must be a non-empty string, got {value!r}")
            if self.type == "url" and not value.startswith(("http://", "https://")):
                raise ConfigError(f"{label} must be a URL starting with http:// or https://, got {value!r}")
            return
        numeric = int if self.type == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            raise ConfigError(
                f"{label} must be {'an integer' if self.type == 'integer' else 'a number'}, got {value!r}"
            )
        if self.minimum is not None and (value <= self.minimum if self.exclusive_minimum else value < self.minimum):
            bound = f"greater than {self.minimum:g}" if self.exclusive_minimum else f"at least {self.minimum:g}"
            raise ConfigError(f"{label} must be {bound}, got {value!r}")


BUILTIN: Final[Mapping[Kind, Mapping[str, tuple[Option, ...]]]] = {
    POISON: {
        "mongodb": (Option("collection", "text"),),
        "file": (Option("path", "text", required=True), Option("maxBytes", "integer", minimum=1024),
                 Option("backups", "integer", minimum=0)),
        "http": (Option("url", "url", required=True), Option("timeout", "number", minimum=0, exclusive_minimum=True),
                 Option("retries", "integer", minimum=0)),
        "log": (),
    },
    METRICS: {
        "prometheus": (),
        "log": (),
        "mongodb": (Option("collection", "text"),),
        "pushgateway": (Option("url", "url", required=True), Option("job", "text")),
    },
}  # fmt: skip
"""kind -> built-in sink type -> its options. The CRD's schema repeats the required ones (a test checks it)."""


def is_builtin(kind: Kind, name: str) -> bool:
    """Whether ``name`` is one of GoQ's own sinks of this kind (always in the sidecar image)."""
    return name in BUILTIN[kind]


def check_sink(kind: Kind, name: str, options: Mapping[str, object]) -> None:
    """Refuse unknown, missing or ill-typed options of the built-in sink ``name``; plug-ins pass (they check
    their own when the sidecar loads them). Messages name the sink, the option and what is allowed."""
    spec = BUILTIN[kind].get(name)
    if spec is None:
        return
    where = f"{kind} {name!r}"
    known = {o.name for o in spec}
    if unknown := sorted(set(options) - known):
        if not known:
            raise ConfigError(f"{where} takes no options, got {', '.join(unknown)}")
        raise ConfigError(f"{where} has unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    for option in spec:
        if option.name in options:
            option.check(options[option.name], where)
        elif option.required:
            raise ConfigError(f"{where} needs option {option.name} ({_describe(option)})")


def _describe(option: Option) -> str:
    return {"text": "a non-empty string", "url": "an http:// or https:// URL"}.get(option.type, option.type)
