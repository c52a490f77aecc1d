"""Follow the mounted key Secret, so that a rotated key ring is in force within seconds, without a restart.

How the directory is followed (the kubelet's ``..data`` swap, the poll, a ring that does not load yet) is
``goq.sidecar.secret_following``'s; this module says how a ring is read and how a change is logged: key ids
only, never key material.
"""

import logging
from pathlib import Path

from goq.errors import ConfigError
from goq.sidecar.secret_following import POLL_INTERVAL, SecretFollower
from goq.signing import Keyring

log = logging.getLogger("goq.sidecar.keys")


def describe_change(old: Keyring, new: Keyring) -> str:
    """Which key ids came and went and which one signs now (ids only, never key material)."""
    added = sorted(set(new.keys) - set(old.keys))
    removed = sorted(set(old.keys) - set(new.keys))
    changed = sorted(k for k in set(old.keys) & set(new.keys) if old.keys[k] != new.keys[k])
    parts = [f"added {', '.join(added) or 'none'}", f"removed {', '.join(removed) or 'none'}"]
    if changed:
        parts.append(f"replaced {', '.join(changed)}")
    active = f"active {new.active}" + (f" (was {old.active})" if new.active != old.active else "")
    return f"{'; '.join(parts)}; {active}"


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
        return f"keys {', '.join(sorted(value.keys))} (active {value.active})"

    def describe_change(self, old: Keyring, new: Keyring) -> str:
        return describe_change(old, new)
