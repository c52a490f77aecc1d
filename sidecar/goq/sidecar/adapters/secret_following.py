"""Follow a mounted Secret directory, so that what it holds (the key ring, the TLS files) is in force within
seconds of a change, without a restart. The one place that knows how a Secret volume changes.

The kubelet updates a Secret volume atomically: it writes the new files into a fresh hidden directory
and renames the ``..data`` symlink over to it; the visible files are symlinks through ``..data``. Every
``POLL_INTERVAL`` a cheap fingerprint of the directory (where ``..data`` points; each entry's inode,
size and mtime) is compared with the last one, and only a changed directory is read. What does not load
(``active`` naming a key whose file is not there yet, a certificate whose key is still the old one: a
read between the kubelet's rename and its new links, or between two files written in place) leaves the
one in force, with one warning per distinct problem, not one per poll, and is read again at the next
poll whether or not the directory changes again.

Both the fingerprint and the read are done off the event loop (``asyncio.to_thread``): a slow or hung
volume delays the next reload, never a message.
"""

import asyncio
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Final, Generic, TypeVar

from goq.errors import ConfigError

POLL_INTERVAL: Final = 2.0
"""Seconds between two looks at a directory: a few stat calls each, nothing read unless changed."""
DATA_LINK: Final = "..data"
"""The kubelet's symlink to the Secret volume's current content."""

Fingerprint = tuple[object, ...]
T = TypeVar("T")


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


_Look = tuple[Fingerprint, T | ConfigError]
"""A changed directory's fingerprint, with what it loaded to or why it did not."""


class SecretFollower(ABC, Generic[T]):
    """What ``directory`` holds, kept current: ``in_force`` is the last value that loaded.

    A subclass says how the directory is read and checked (``load``) and how a value is named in the log
    (``describe``, ``describe_change``); ``poll`` looks once, ``run`` looks every ``interval`` until cancelled.
    """

    noun: str
    """What the directory holds, for the log (``key ring``)."""

    def __init__(
        self,
        directory: Path,
        in_force: T,
        logger: logging.Logger,
        *,
        interval: float = POLL_INTERVAL,
        seen: Fingerprint | None = None,
    ) -> None:
        """``seen``: the fingerprint taken before ``in_force`` was read; None: the first poll reads once, so
        a change between that read and the follower's start is not missed."""
        self.directory = directory
        self.in_force = in_force
        self.log = logger
        self.interval = interval
        self.reloads = 0
        """How many times a changed value was put in force."""
        self._seen = seen
        self._warned: str | None = None

    @abstractmethod
    def load(self, directory: Path) -> T:
        """Read and check the directory; ``ConfigError`` when it holds nothing usable (yet). Runs off the loop."""

    @abstractmethod
    def describe(self, value: T) -> str:
        """``value`` named for a log line (never secret material)."""

    @abstractmethod
    def describe_change(self, old: T, new: T) -> str:
        """What changed from ``old`` to ``new``, for the log line of a reload."""

    def poll(self) -> bool:
        """Look once, here and now (blocking); whether a different value is now in force."""
        return self._take(self._look())

    async def poll_off_loop(self) -> bool:
        """``poll`` with the directory's stat calls and reads in a worker thread."""
        return self._take(await asyncio.to_thread(self._look))

    async def run(self) -> None:
        """Poll until cancelled; a failure to look is logged and the next poll tries again."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll_off_loop()
            except Exception:  # never let the follower die silently: the value in force would freeze
                self.log.exception("looking at the %s in %s failed; trying again", self.noun, self.directory)

    def _look(self) -> _Look[T] | None:
        """The directory's fingerprint and, if it changed, what it loads to (or why not). Changes no state:
        it runs in a worker thread while the loop goes on."""
        seen = fingerprint(self.directory)
        if seen == self._seen:
            return None
        try:
            return seen, self.load(self.directory)
        except ConfigError as exc:
            return seen, exc

    def _take(self, look: _Look[T] | None) -> bool:
        """Put what was loaded in force, on the loop; or keep the one in force and warn once per problem."""
        if look is None:
            return False
        seen, loaded = look
        if isinstance(loaded, ConfigError):  # ``_seen`` stays: the next poll reads again, changed or not
            if str(loaded) != self._warned:
                self._warned = str(loaded)
                self.log.warning(
                    "the %s in %s changed but does not load; keeping %s: %s",
                    self.noun,
                    self.directory,
                    self.describe(self.in_force),
                    loaded,
                )
            return False
        self._seen = seen  # taken before the read: a change during it shows at the next poll
        self._warned = None
        if loaded == self.in_force:
            return False
        self.log.info("%s in %s reloaded: %s", self.noun, self.directory, self.describe_change(self.in_force, loaded))
        self.in_force = loaded
        self.reloads += 1
        return True
