"""HMAC-SHA256 signing of envelope bytes, with several keys valid at once so that keys can rotate.

The standard library's ``hmac`` (OpenSSL underneath) does it: as fast as ``cryptography``'s, and a
sidecar that does not load ``cryptography`` is 6 MB smaller.

The sending sidecar signs with the active key; the receiving sidecar accepts any key it knows. To
rotate: add the new key everywhere, then make it active, then, once no message signed with the old
key can still be in flight, remove the old one. A receiver that does not know a key yet answers "retry
later", so a rotation faster than the key's propagation delays messages but loses none.
"""

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from goq.errors import ConfigError, PermanentError

MIN_KEY_BYTES: Final = 32
ACTIVE_FILE: Final = "active"
"""In a key directory (a mounted Secret), the file that names the active key; every other file is a key."""
UNKNOWN_KEY: Final = "unknown-key"
"""``SignatureError.reason`` for a key id this ring does not hold: perhaps a newer key not yet propagated here."""
BAD_SIGNATURE: Final = "bad-signature"
"""``SignatureError.reason`` for a known key whose signature does not match: forged or corrupted."""


class SignatureError(PermanentError):
    """A message's signature does not verify; ``reason`` is ``UNKNOWN_KEY`` or ``BAD_SIGNATURE``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Keyring:
    """The HMAC keys a sidecar knows, by id, and the id of the one it signs with."""

    keys: Mapping[str, bytes]
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ConfigError(f"active key {self.active!r} is not among the keys ({', '.join(sorted(self.keys))})")
        for key_id, key in self.keys.items():
            if len(key) < MIN_KEY_BYTES:
                raise ConfigError(f"HMAC key {key_id!r} has {len(key)} bytes; at least {MIN_KEY_BYTES} are required")

    @classmethod
    def from_directory(cls, directory: Path) -> "Keyring":
        """Read a mounted key Secret: one file per key (name = key id, content = raw key bytes), and a
        file ``active`` naming the key to sign with."""
        try:
            active = (directory / ACTIVE_FILE).read_text().strip()
            keys = {
                p.name: p.read_bytes()
                for p in directory.iterdir()
                if p.is_file() and p.name != ACTIVE_FILE and not p.name.startswith(".")
            }
        except OSError as exc:
            raise ConfigError(f"cannot read HMAC keys from {directory}: {exc}") from exc
        return cls(keys, active)

    def sign(self, body: bytes) -> tuple[str, bytes]:
        """The active key's id and the signature of ``body``."""
        return self.active, hmac.digest(self.keys[self.active], body, "sha256")

    def verify(self, body: bytes, key_id: str, signature: bytes) -> None:
        """Raise ``SignatureError`` unless ``signature`` is ``body``'s HMAC under ``key_id`` (constant time)."""
        key = self.keys.get(key_id)
        if key is None:
            raise SignatureError(UNKNOWN_KEY, f"signed with unknown key {key_id!r}")
        if not hmac.compare_digest(hmac.digest(key, body, "sha256"), signature):
            raise SignatureError(BAD_SIGNATURE, f"signature does not match (key {key_id!r})")
