"""Identities and addresses: validated once, so that every layer can trust them."""

import functools
import re
from dataclasses import dataclass, field
from typing import Final

from goq.errors import ConfigError

MAX_IDENTITY_LENGTH: Final = 59
"""The Service ``goq-<id>`` must stay a 63-character DNS label."""
MAX_NAMESPACE_LENGTH: Final = 63
_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
IDENTITY_PATTERN: Final = rf"^(?=.{{1,{MAX_IDENTITY_LENGTH}}}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""The same rule as a regular expression, for schemas."""


def _label_problem(value: str, limit: int) -> str | None:
    if not value:
        return "must not be empty"
    if len(value) > limit:
        return f"is {len(value)} characters long; at most {limit} are allowed"
    if value != value.lower() and _LABEL.fullmatch(value.lower()):
        return "must be lower case"
    if not _LABEL.fullmatch(value):
        return "may contain only lower-case letters, digits and '-', and must start and end with a letter or digit"
    return None


def _validate_label(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, got {type(value).__name__}")
    if problem := _label_problem(value, limit):
        raise ConfigError(f"{what} {value!r} {problem} (a DNS-1123 label of at most {limit} characters)")
    return value


def validate_identity(value: object, what: str = "identity") -> str:
    """Return ``value`` if it is a valid identity (a DNS-1123 label of at most 59 characters)."""
    return _validate_label(value, what, MAX_IDENTITY_LENGTH)


def validate_namespace(value: object, what: str = "namespace") -> str:
    """Return ``value`` if it is a valid Kubernetes namespace name."""
    return _validate_label(value, what, MAX_NAMESPACE_LENGTH)


@dataclass(frozen=True, order=True)
class Address:
    """Where a message goes: an identity, in a namespace (``None``: the sender's own)."""

    identity: str
    namespace: str | None = None
    _text: str = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Computed once: every message's addresses are hashed (lanes, backlogs) and written out (envelopes).
        object.__setattr__(self, "_text", f"{self.identity}.{self.namespace}" if self.namespace else self.identity)
        object.__setattr__(self, "_hash", hash((self.identity, self.namespace)))

    @classmethod
    def parse(cls, text: object) -> "Address":
        """Parse ``"<id>"`` or ``"<id>.<namespace>"``, with a message that says what is wrong."""
        if not isinstance(text, str) or not text:
            raise ConfigError('destination must be "<identity>" or "<identity>.<namespace>", got nothing')
        return _parse(text)

    def resolved(self, default_namespace: str) -> "Address":
        """This address with the namespace filled in."""
        return self if self.namespace else _in_namespace(self.identity, default_namespace)

    def __str__(self) -> str:
        return self._text

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type["Address"], tuple[str, str | None]]:
        """Rebuilt from its fields: a string's hash differs from one process to the next."""
        return Address, (self.identity, self.namespace)


@functools.lru_cache(maxsize=1024)
def _in_namespace(identity: str, namespace: str) -> Address:
    """Shared, like parsed addresses: a dict lookup finds the very object it holds, without comparing fields."""
    return Address(identity, namespace)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> Address:
    """Every message names two addresses and a sidecar sees few distinct ones: a parsed (immutable) one is
    handed out again. Errors are not cached: they are raised anew each time."""
    identity, dot, namespace = text.partition(".")
    if "." in namespace:
        raise ConfigError(f'destination {text!r} has more than one "."; use "<identity>" or "<identity>.<namespace>"')
    validate_identity(identity, "destination identity")
    return Address(identity, validate_namespace(namespace, "destination namespace") if dot else None)
