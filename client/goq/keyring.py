"""The HMAC key ring as the operator keeps it in the ``goq-hmac-keys`` Secret, with its rotation schedule.

Shared because the operator writes it and every sidecar reads it. Several keys are valid at once so
that keys rotate without losing messages in flight: a new key is added *before* it signs anything
(sidecars see a changed Secret only after the kubelet's sync delay), every listed key verifies, and an
old key is dropped only when no message signed with it can still be alive. Pure: no I/O; the caller
supplies randomness and the clock. Key material is never part of ``repr`` or any message.

Secret layout, as a mounted volume gives it to the sidecar (``goq.signing.Keyring.from_directory``):
    ``<key id>``  one entry per key: the raw key, 32 random bytes
    ``active``    the id of the key to sign with
and, not mounted, the annotation ``goq.io/key-schedule``:
    ``{"keys": [{"id": "<id>", "created": <unix s>, "notBefore": <unix s>}, ...]}``
The operator rewrites ``active`` when a new key's ``notBefore`` has passed. This is the master's layout,
and every namespace's with ``GOQ_KEY_SCOPE=cluster``; by default each namespace gets keys derived from it
per pair of namespaces instead (``goq.pair_keys``).
"""

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from goq.errors import ConfigError
from goq.pair_keys import NAMESPACE_ENTRY

SECRET_NAME: Final = "goq-hmac-keys"
"""The Secret in each namespace with GoQueues; mounted into every sidecar."""
KEY_BYTES: Final = 32
"""256-bit keys for HMAC-SHA256."""
ACTIVE_ENTRY: Final = "active"
"""The Secret entry (a file in the mounted volume) naming the key that signs."""
SCHEDULE_ANNOTATION: Final = "goq.io/key-schedule"
_KEY_ID: Final = re.compile(r"[A-Za-z0-9][-_.A-Za-z0-9]{0,62}")


@dataclass(frozen=True)
class HmacKey:
    """One key: its ``id`` goes with each signature, so the receiver knows which key to verify with."""

    id: str
    created: float
    not_before: float
    """Signs only from this time on (verifies at once)."""
    material: bytes = field(repr=False)


@dataclass(frozen=True)
class SecretContent:
    """What goes into the Secret: ``data`` (raw bytes; the caller base64-encodes) and ``annotations``."""

    data: dict[str, bytes] = field(repr=False)
    annotations: dict[str, str]


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
        """A ring with a new key that signs after ``propagation`` s; keys made more than ``retention`` s
        ago are dropped, except the key that signs now and keys not signing yet."""
        current = self.signing_key(now)
        kept = [k for k in self.keys if k is current or k.not_before > now or k.created + retention > now]
        return KeyRing((*kept, _new_key(now, now + propagation, key_id, material)))

    def to_secret(self, now: float) -> SecretContent:
        """The Secret's content at ``now`` (``active`` names the key that signs now)."""
        data = {k.id: k.material for k in self.keys}
        data[ACTIVE_ENTRY] = self.signing_key(now).id.encode()
        schedule = {"keys": [{"id": k.id, "created": k.created, "notBefore": k.not_before} for k in self.keys]}
        return SecretContent(data, {SCHEDULE_ANNOTATION: json.dumps(schedule, sort_keys=True)})

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes], annotations: Mapping[str, str] | None = None) -> "KeyRing":
        """Read a ring back; a damaged Secret is a ConfigError that names what is wrong (never the keys).

        Without the schedule annotation (a Secret made by hand) every key counts as old and the
        ``active`` one as the newest.
        """
        materials = {k: v for k, v in data.items() if k != ACTIVE_ENTRY}
        try:
            active = data[ACTIVE_ENTRY].decode().strip()
            schedule = (annotations or {}).get(SCHEDULE_ANNOTATION)
            if schedule:
                entries = json.loads(schedule)["keys"]
                times = {str(e["id"]): (float(e["created"]), float(e["notBefore"])) for e in entries}
            else:
                times = {key_id: ((1.0, 0.0) if key_id == active else (0.0, 0.0)) for key_id in materials}
            keys = tuple(
                HmacKey(key_id, created, not_before, materials[key_id])
                for key_id, (created, not_before) in sorted(times.items(), key=lambda kv: kv[1])
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"the HMAC key Secret is damaged ({type(exc).__name__}: {exc})") from exc
        if not keys:
            raise ConfigError("the HMAC key Secret lists no keys")
        if active not in materials:
            raise ConfigError(f"the HMAC key Secret's active key {active!r} is not among its keys")
        for key in keys:
            if len(key.material) != KEY_BYTES:
                raise ConfigError(f"HMAC key {key.id!r} is {len(key.material)} bytes long; {KEY_BYTES} are required")
        return cls(keys)


def _new_key(now: float, not_before: float, key_id: str | None, material: bytes | None) -> HmacKey:
    key_id = key_id or f"k{secrets.token_hex(4)}"
    if key_id in (ACTIVE_ENTRY, NAMESPACE_ENTRY) or not _KEY_ID.fullmatch(key_id):
        raise ConfigError(
            f"HMAC key id {key_id!r} must be a Secret key (letters, digits, '-', '_', '.') other than 'active' "
            "and 'namespace'"
        )
    return HmacKey(key_id, now, not_before, material if material is not None else secrets.token_bytes(KEY_BYTES))
