"""Follow the mounted key Secret, so that a rotated key ring is in force within seconds, without a restart.

The kubelet updates a Secret volume atomically: it writes the new files into a fresh hidden directory
and renames the ``..data`` symlink over to it; the visible files are symlinks through ``..data``. Every
``POLL_INTERVAL`` a cheap fingerprint of the directory (where ``..data`` points; each entry's inode,
size and mtime) is compared with the last one, and only a changed directory is read. A ring that does
not load (``active`` naming a key whose file is not there yet, as between the kubelet's rename and its
new links) leaves the last good ring in force, with one warning per problem, not one per poll.
"""

import asyncio
import logging
import os
from pathlib import Path
from typing import Final

from goq.errors import ConfigError
from goq.signing import Keyring

log = logging.getLogger("goq.sidecar.keys")

POLL_INTERVAL: Final = 2.0
"""Seconds between two looks at the key directory: a few stat calls each, nothing read unless changed."""
DATA_LINK: Final = "..data"
"""The kubelet's symlink to the Secret volume's current content."""

Fingerprint = tuple[object, ...]


def fingerprint(directory: Path) -> Fingerprint:
    """What changes whenever the directory's content may have: ``..data``'s target and each entry's file."""
    try:
        target = os.readlink(directory / DATA_LINK)
    except OSError:
        target = ""  # not a kubelet volume (a plain directory): the entries alone tell
    entries = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                try:
                    st = entry.stat()  # follows the link to the file in the current timestamped directory
                    entries.append((entry.name, st.st_ino, st.st_size, st.st_mtime_ns))
                except OSError:  # a link left dangling by an update under way
                    entries.append((entry.name, -1, -1, -1))
    except OSError as exc:
        return (target, f"unreadable: {exc}")
    return (target, tuple(sorted(entries)))


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


class KeyringFollower:
    """The key ring read from ``directory``, kept current: ``current`` is what signs and verifies now."""

    def __init__(self, directory: Path, keyring: Keyring, *, interval: float = POLL_INTERVAL) -> None:
        self.directory = directory
        self.keyring = keyring
        self.interval = interval
        self.reloads = 0
        """How many times a changed ring was put in force (``goq_key_ring_reloads_total``)."""
        self._seen: Fingerprint | None = None  # the first poll reads once: a change since start is not missed
        self._warned: str | None = None

    def current(self) -> Keyring:
        return self.keyring

    def poll(self) -> bool:
        """Read the directory if it changed since the last look; whether a different ring is now in force."""
        seen = fingerprint(self.directory)
        if seen == self._seen:
            return False
        self._seen = seen  # taken before reading: a change during the read shows at the next poll
        try:
            loaded = Keyring.from_directory(self.directory)
        except (ConfigError, ValueError) as exc:  # ValueError: an ``active`` file that is not text
            if str(exc) != self._warned:
                self._warned = str(exc)
                log.warning(
                    "the key ring in %s changed but does not load; keeping keys %s (active %s): %s",
                    self.directory,
                    ", ".join(sorted(self.keyring.keys)),
                    self.keyring.active,
                    exc,
                )
            return False
        self._warned = None
        if loaded == self.keyring:
            return False
        log.info("key ring in %s reloaded: %s", self.directory, describe_change(self.keyring, loaded))
        self.keyring = loaded
        self.reloads += 1
        return True

    async def run(self) -> None:
        """Poll until cancelled; a failure to look is logged and the next poll tries again."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.poll()
            except Exception:  # never let the follower die silently: the ring would freeze
                log.exception("looking at the key ring in %s failed; trying again", self.directory)
