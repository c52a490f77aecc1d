"""HMAC-SHA256 signing of envelope bytes, with several keys valid at once so that keys can rotate.

The standard library's ``hmac`` (OpenSSL underneath) does it: as fast as ``cryptography``'s, and a
sidecar that does not load ``cryptography`` is 6 MB smaller.

The sending sidecar signs with the active key; the receiving sidecar accepts any key it knows. To
rotate: add the new key everywhere, then make it active, then, once no message signed with the old
key can still be in flight, remove the old one. A receiver that does not know a key yet answers "retry
later", so a rotation faster than the key's propagation delays messages but loses none.

Two layouts (``goq.pair_keys``): a cluster-wide ring (one key per id, the same in every namespace) and a
ring scoped to a namespace (one key per id and ordered pair of namespaces with this one on a side). A scoped
ring signs with the key of (its namespace -> the destination's) and verifies with (the envelope's source
namespace -> its own); the key id on the wire, ``<id>@<source namespace>``, says which.
"""

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from goq import pair_keys
from goq.errors import ConfigError, PermanentError, TemporaryError
from goq.messages import Message

MIN_KEY_BYTES: Final = 32
ACTIVE_FILE: Final = "active"
"""In a key directory (a mounted Secret), the file that names the active key; every other file is a key."""
UNKNOWN_KEY: Final = "unknown-key"
"""``SignatureError.reason`` for a key id this ring does not hold: perhaps a newer key not yet propagated here."""
BAD_SIGNATURE: Final = "bad-signature"
"""``SignatureError.reason`` for a known key whose signature does not match: forged or corrupted."""


class NoKeyError(TemporaryError):
    """A scoped ring holds no key for messages to a namespace: perhaps one whose keys are on their way."""


class SignatureError(PermanentError):
    """A message's signature does not verify; ``reason`` is ``UNKNOWN_KEY`` or ``BAD_SIGNATURE``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Keyring:
    """The HMAC keys a sidecar knows, by Secret entry, and the id of the one it signs with.

    ``namespace`` None: a cluster-wide ring, ``keys`` by key id. Set: the ring of that namespace, ``keys``
    by pair entry (``<src>.<dst>.<id>``, ``goq.pair_keys``), each with ``namespace`` on one side."""

    keys: Mapping[str, bytes]
    active: str
    namespace: str | None = None

    def __post_init__(self) -> None:
        if self.namespace is not None:
            self._check_pairs(self.namespace)
        elif self.active not in self.keys:
            raise ConfigError(f"active key {self.active!r} is not among the keys ({', '.join(sorted(self.keys))})")
        for key_id, key in self.keys.items():
            if len(key) < MIN_KEY_BYTES:
                raise ConfigError(f"HMAC key {key_id!r} has {len(key)} bytes; at least {MIN_KEY_BYTES} are required")

    def _check_pairs(self, namespace: str) -> None:
        for name in self.keys:
            pair = pair_keys.parse_entry(name)
            if pair is None or namespace not in pair[:2]:
                raise ConfigError(
                    f"HMAC key entry {name!r} of namespace {namespace!r}'s ring is not a key of a pair of "
                    f"namespaces with {namespace!r} on one side (<source>.<destination>.<key id>)"
                )
        if self.active not in self.ids:
            raise ConfigError(f"active key {self.active!r} is not among the keys ({', '.join(sorted(self.ids))})")

    @property
    def scoped(self) -> bool:
        """Whether this is a namespace's ring of pair keys."""
        return self.namespace is not None

    @property
    def ids(self) -> frozenset[str]:
        """The master key ids this ring holds keys of."""
        if self.namespace is None:
            return frozenset(self.keys)
        return frozenset(pair[2] for name in self.keys if (pair := pair_keys.parse_entry(name)) is not None)

    @property
    def peers(self) -> frozenset[str]:
        """The namespaces a scoped ring holds pair keys with (its own included); empty for a cluster-wide ring."""
        pairs = (pair_keys.parse_entry(name) for name in self.keys) if self.namespace is not None else ()
        return frozenset(side for pair in pairs if pair is not None for side in pair[:2])

    @classmethod
    def from_directory(cls, directory: Path) -> "Keyring":
        """Read a mounted key Secret: one file per key (name = key id, or pair entry; content = raw key
        bytes), a file ``active`` naming the key id to sign with and, in a scoped ring, ``namespace``."""
        try:
            files = {p.name: p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")}
            active = (directory / ACTIVE_FILE).read_text().strip()
            scope = files.pop(pair_keys.NAMESPACE_ENTRY, None)
            namespace = scope.read_text().strip() if scope is not None else None
            keys = {name: p.read_bytes() for name, p in files.items() if name != ACTIVE_FILE}
        except OSError as exc:
            raise ConfigError(f"cannot read HMAC keys from {directory}: {exc}") from exc
        return cls(keys, active, namespace)

    def signing_key(self, to: str | None = None) -> tuple[str, bytes]:
        """The key id to name and the key to sign with, for a message to namespace ``to``.

        Raises ``NoKeyError`` if a scoped ring has no key for ``to`` (yet)."""
        if self.namespace is None:
            return self.active, self.keys[self.active]
        if to is None:
            raise ConfigError(f"namespace {self.namespace!r}'s HMAC keys sign only for a destination namespace")
        key = self.keys.get(pair_keys.entry(self.namespace, to, self.active))
        if key is None:
            raise NoKeyError(
                f"no HMAC key (active {self.active!r}) for messages from namespace {self.namespace!r} to "
                f"{to!r}: the operator gives each namespace the keys of every namespace with GoQueues; a new "
                "namespace's keys reach the sidecars within the kubelet's Secret sync (about 2 minutes)"
            )
        return pair_keys.wire_id(self.active, self.namespace), key

    def sign(self, body: bytes, to: str | None = None) -> tuple[str, bytes]:
        """The key id and the signature of ``body``, for a message to namespace ``to`` (a scoped ring needs it)."""
        key_id, key = self.signing_key(to)
        return key_id, hmac.digest(key, body, "sha256")

    def try_sign(self, body: bytes, to: str | None) -> tuple[str, bytes]:
        """``sign``, or ``("", b"")`` while a scoped ring has no key for ``to``: the message is accepted now
        and signed before its first delivery attempt (``needs_signing``), which waits for the key."""
        try:
            return self.sign(body, to)
        except NoKeyError:
            return "", b""

    def needs_signing(self, key_id: str) -> bool:
        """Whether an envelope stored with ``key_id`` must be signed again before it goes out: it was never
        signed (no key for its destination when it was accepted), or signed under the other layout (kept
        from before ``GOQ_KEY_SCOPE`` changed), which no receiver of this ring's kind can verify."""
        if not key_id:
            return True
        if self.namespace is not None:
            return pair_keys.WIRE_SEPARATOR not in key_id
        return pair_keys.WIRE_SEPARATOR in key_id and key_id not in self.keys

    def verifying_key(self, key_id: str) -> bytes:
        """The key that checks an envelope naming ``key_id``; ``SignatureError`` (``UNKNOWN_KEY``) if none."""
        if self.namespace is None:
            key = self.keys.get(key_id)
        else:
            pair = pair_keys.parse_wire_id(key_id)
            if pair is None:
                raise SignatureError(
                    UNKNOWN_KEY,
                    f"signed with key {key_id!r} of a cluster-wide ring; namespace {self.namespace!r} verifies "
                    "only keys per pair of namespaces (GOQ_KEY_SCOPE=namespace): an up-to-date sender signs it again",
                )
            key = self.keys.get(pair_keys.entry(pair[1], self.namespace, pair[0]))
        if key is None:
            raise SignatureError(UNKNOWN_KEY, f"signed with unknown key {key_id!r}")
        return key

    def verify(self, body: bytes, key_id: str, signature: bytes) -> None:
        """Raise ``SignatureError`` unless ``signature`` is ``body``'s HMAC under ``key_id`` (constant time)."""
        if not hmac.compare_digest(hmac.digest(self.verifying_key(key_id), body, "sha256"), signature):
            raise SignatureError(BAD_SIGNATURE, f"signature does not match (key {key_id!r})")

    def open_envelope(self, body: bytes, key_id: str, signature: bytes) -> Message:
        """The message a signed envelope carries, once its signature verified and its key vouches for its ``from``
        (``verify``, then ``check_source``): what every receiver, small or large, checks first."""
        self.verify(body, key_id, signature)
        message = Message.decode(body)
        self.check_source(key_id, message.source.namespace)
        return message

    def check_source(self, key_id: str, source_namespace: str | None) -> None:
        """After ``verify``: refuse (``BAD_SIGNATURE``) a message whose ``from`` is in another namespace than
        the one whose key signed it. The key vouches for its source namespace only: a holder of namespace
        A's keys must not make a message that claims to come from B."""
        pair = pair_keys.parse_wire_id(key_id) if self.namespace is not None else None
        if pair is not None and pair[1] != source_namespace:
            raise SignatureError(
                BAD_SIGNATURE,
                f"signed with the key of namespace {pair[1]!r}'s senders (key {key_id!r}) but claims to come "
                f"from namespace {source_namespace!r}",
            )
