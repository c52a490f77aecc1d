"""The HMAC key ring: the keys that sign and verify messages, as kept in the ``goq-hmac-keys`` Secret.

Shared because the operator writes it and every sidecar reads it. Several keys are valid at once so
that keys rotate without losing messages in flight: a new key is added *before* it signs anything
(sidecars get a changed Secret only after the kubelet's sync delay), every listed key verifies, and an
old key is dropped only when no message signed with it can still be alive. Pure: no I/O; the caller
supplies randomness and the clock. Key material is never part of ``repr`` or any message.

Secret layout (``data``, base64 as always in Secrets):
    ``key-<id>``   32 random bytes each
    ``keys.json``  ``{"keys": [{"id": "<id>", "created": <unix s>, "notBefore": <unix s>}, ...]}``
"""

import json
import secrets
from dataclasses import dataclass, field
from typing import Final

from goq.errors import ConfigError

SECRET_NAME: Final = "goq-hmac-keys"
"""The Secret in each namespace with GoQueues; mounted into every sidecar."""
KEY_BYTES: Final = 32
"""256-bit keys for HMAC-SHA256."""
INDEX_KEY: Final = "keys.json"
_PREFIX: Final = "key-"


@dataclass(frozen=True)
class HmacKey:
    """One key: ``id`` goes with each signature, so the receiver knows which key to verify with."""

    id: str
    created: float
    not_before: float
    """Signs only from this time on (verifies at once)."""
    material: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    """Every valid key, oldest first."""

    keys: tuple[HmacKey, ...]

    @classmethod
    def generate(cls, now: float, key_id: str | None = None, material: bytes | None = None) -> "KeyRing":
        """A fresh ring with one key that signs at once."""
        return cls((_new_key(now, now, key_id, material),))

    def signing_key(self, now: float) -> HmacKey:
        """The newest key allowed to sign at ``now``."""
        usable = [k for k in self.keys if k.not_before <= now]
        if not usable:
            raise ConfigError("no HMAC key may sign yet; the key ring holds only keys for the future")
        return max(usable, key=lambda k: (k.not_before, k.created))

    def find(self, key_id: str) -> HmacKey | None:
        """The key a signature names, if it is still valid."""
        return next((k for k in self.keys if k.id == key_id), None)

    def rotated(
        self, now: float, propagation: float, retention: float, key_id: str | None = None, material: bytes | None = None
    ) -> "KeyRing":
        """A ring with a new key that signs after ``propagation`` s; keys that stopped signing more than
        ``retention`` s ago are dropped (the key that signs now is always kept)."""
        current = self.signing_key(now)
        kept = [k for k in self.keys if k is current or k.not_before > now or k.created + retention > now]
        return KeyRing((*kept, _new_key(now, now + propagation, key_id, material)))

    def to_secret_data(self) -> dict[str, bytes]:
        """The Secret's data, raw bytes (the caller base64-encodes for the API)."""
        index = {"keys": [{"id": k.id, "created": k.created, "notBefore": k.not_before} for k in self.keys]}
        data = {f"{_PREFIX}{k.id}": k.material for k in self.keys}
        data[INDEX_KEY] = json.dumps(index, sort_keys=True).encode()
        return data

    @classmethod
    def from_secret_data(cls, data: dict[str, bytes]) -> "KeyRing":
        """Read a ring back; a damaged Secret is a ConfigError that names what is wrong (never the keys)."""
        try:
            index = json.loads(data[INDEX_KEY])
            entries = index["keys"]
            keys = tuple(
                HmacKey(str(e["id"]), float(e["created"]), float(e["notBefore"]), data[f"{_PREFIX}{e['id']}"])
                for e in entries
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the HMAC key Secret is damaged ({type(exc).__name__}: {exc})") from exc
        if not keys:
            raise ConfigError("the HMAC key Secret lists no keys")
        for key in keys:
            if len(key.material) != KEY_BYTES:
                raise ConfigError(f"HMAC key {key.id!r} is {len(key.material)} bytes long; {KEY_BYTES} are required")
        return cls(keys)


def _new_key(now: float, not_before: float, key_id: str | None, material: bytes | None) -> HmacKey:
    return HmacKey(
        key_id or secrets.token_hex(4),
        now,
        not_before,
        material if material is not None else secrets.token_bytes(KEY_BYTES),
    )
