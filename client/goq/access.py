"""Who may send to an identity: a GoQueue's ``spec.allowFrom``, parsed once and checked by every receiver.

The rule lives here alone, so the small-message path (``Inbound``), the large-message path
(``LargeReceiver``), the webhook and the docs agree. ``allowFrom`` absent: anyone may send (GoQ's
behaviour before the field existed). A list: only the senders it names; an empty list: nobody.
"""

from dataclasses import dataclass
from typing import Final

from goq.errors import ConfigError
from goq.identity import Address, validate_identity, validate_namespace
from goq.specs import SpecReader

ANY: Final = "*"
"""Matches every namespace, or every identity."""
MAX_RULES: Final = 256
FORBIDDEN: Final = "forbidden"
"""The refusal's reason: counted under it, and the sender poisons the message with it."""


@dataclass(frozen=True)
class Sender:
    """One ``allowFrom`` entry: the senders of ``namespace`` named ``identity``; ``*`` in either: any."""

    namespace: str
    identity: str

    def matches(self, source: Address) -> bool:
        """Whether ``source`` is one of the senders this entry names."""
        return (self.namespace == ANY or self.namespace == source.namespace) and (
            self.identity == ANY or self.identity == source.identity
        )

    def __str__(self) -> str:
        return f"{self.identity}.{self.namespace}"

    @classmethod
    def from_spec(cls, value: object, path: str) -> "Sender":
        """One entry, an object with both ``namespace`` and ``identity`` (``*``: any), so that a misspelt
        field (which the API server drops) is refused rather than read as "any"; a compact ``"orders.shop"``
        is refused, saying what to write."""
        if isinstance(value, str):
            named, _, space = value.partition(".")
            raise ConfigError(
                f"{path} must be an object {{namespace, identity}}, got the string {value!r}; "
                f'write {{namespace: "{space or ANY}", identity: "{named or ANY}"}}'
            )
        r = SpecReader(value, path)
        example = '(for example {namespace: "shop", identity: "orders"} or {namespace: "*", identity: "monitor"})'
        namespace, identity = r.text("namespace"), r.text("identity")
        if namespace is None or identity is None:
            missing = " and ".join(n for n, v in (("namespace", namespace), ("identity", identity)) if v is None)
            raise ConfigError(f"{path} needs {missing}: both are required, {ANY!r} meaning any {example}")
        if namespace != ANY:
            validate_namespace(namespace, f"{r.field('namespace')} (a namespace, or {ANY!r})")
        if identity != ANY:
            validate_identity(identity, f"{r.field('identity')} (an identity, or {ANY!r})")
        r.reject_unknown()
        return cls(namespace, identity)


AllowFrom = tuple[Sender, ...] | None
"""``None``: anyone may send; a tuple: only the senders it names (empty: nobody)."""


def parse_allow_from(value: object, path: str) -> AllowFrom:
    """``allowFrom`` as given in a GoQueue spec: absent (``None``) or a list of at most 256 entries."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ConfigError(
            f"{path} must be a list of senders such as "
            f'[{{namespace: "shop", identity: "orders"}}, {{namespace: "*", identity: "monitor"}}], '
            f"or absent to let anyone send; got {value!r}"
        )
    if len(value) > MAX_RULES:
        raise ConfigError(f"{path} has {len(value)} entries; at most {MAX_RULES} are allowed")
    return tuple(Sender.from_spec(entry, f"{path}[{i}]") for i, entry in enumerate(value))


def is_allowed(allow_from: AllowFrom, source: Address) -> bool:
    """Whether ``source`` may send to an identity whose spec says ``allow_from``."""
    return allow_from is None or any(rule.matches(source) for rule in allow_from)


def describe(allow_from: AllowFrom) -> str:
    """``allowFrom`` for people, as the refusal quotes it."""
    if allow_from is None:
        return "anyone"
    if not allow_from:
        return "nobody"
    return ", ".join(str(rule) for rule in allow_from)


def access_refusal(allow_from: AllowFrom, source: Address, me: Address) -> tuple[str, str] | None:
    """``(reason, detail)`` if ``source`` may not send to ``me``, else ``None``: after the signature is
    verified and the envelope decoded, so ``source`` is what a key holder signed."""
    if is_allowed(allow_from, source):
        return None
    return FORBIDDEN, f"{source} may not send to {me} (allowFrom {describe(allow_from)})"
