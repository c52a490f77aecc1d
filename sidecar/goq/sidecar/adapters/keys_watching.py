"""Follow the mounted key Secret, so that a rotated key ring is in force within seconds, without a restart.

How the directory is followed (the kubelet's ``..data`` swap, the poll, a ring that does not load yet) is
``goq.sidecar.adapters.secret_following``'s; this module says how a ring is read and how a change is logged: key ids
only, never key material.
"""

import logging
from pathlib import Path

from goq import pair_keys
from goq.errors import ConfigError
from goq.sidecar.adapters.secret_following import POLL_INTERVAL, SecretFollower
from goq.signing import Keyring

log = logging.getLogger("goq.sidecar.keys")


def describe_change(old: Keyring, new: Keyring) -> str:
    """Which key ids came and went and which one signs now (ids only, never key material); for a ring scoped
    to a namespace, also which namespaces it came to hold pair keys with, or no longer does."""
    added = sorted(new.ids - old.ids)
    removed = sorted(old.ids - new.ids)
    changed = sorted({_key_id(k) for k in set(old.keys) & set(new.keys) if old.keys[k] != new.keys[k]})
    parts = [f"added {', '.join(added) or 'none'}", f"removed {', '.join(removed) or 'none'}"]
    if changed:
        parts.append(f"replaced {', '.join(changed)}")
    if new.scoped or old.scoped:
        came, went = sorted(new.peers - old.peers), sorted(old.peers - new.peers)
        if came or went or new.namespace != old.namespace:
            parts.append(f"namespaces {_peers(new)} (added {len(came)}, removed {len(went)})")
    active = f"active {new.active}" + (f" (was {old.active})" if new.active != old.active else "")
    return f"{'; '.join(parts)}; {active}"


def _key_id(entry: str) -> str:
    pair = pair_keys.parse_entry(entry)
    return entry if pair is None else pair[2]


def _peers(ring: Keyring) -> str:
    """The namespaces a scoped ring holds pair keys with, at most five named."""
    if not ring.scoped:
        return "none (a cluster-wide ring)"
    peers = sorted(ring.peers)
    shown = ", ".join(peers[:5]) + (f" and {len(peers) - 5} more" if len(peers) > 5 else "")
    return f"{len(peers)}: {shown}"


class KeyringFollower(SecretFollower[Keyring]):
    """The key ring read from ``directory``, kept current: ``current`` is what signs and verifies now."""

    noun = "key ring"

    def __init__(self, directory: Path, keyring: Keyring, *, interval: float = POLL_INTERVAL) -> None:
        super().__init__(directory, keyring, log, interval=interval)  # the first poll reads once

    @property
    def keyring(self) -> Keyring:
        return self.in_force

    def current(self) -> Keyring:
        return self.in_force

    def load(self, directory: Path) -> Keyring:
        try:
            return Keyring.from_directory(directory)
        except ValueError as exc:  # an ``active`` file that is not text
            raise ConfigError(str(exc)) from exc

    def describe(self, value: Keyring) -> str:
        scope = f", namespace {value.namespace}'s pair keys with namespaces {_peers(value)}" if value.scoped else ""
        return f"keys {', '.join(sorted(value.ids))} (active {value.active}{scope})"

    def describe_change(self, old: Keyring, new: Keyring) -> str:
        return describe_change(old, new)
