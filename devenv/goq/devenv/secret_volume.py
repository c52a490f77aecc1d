"""A directory laid out and updated as the kubelet does a Secret volume, for tests of what follows one.

The kubelet's atomic writer: the files live in a hidden timestamped directory; ``..data`` is a
symlink to it; every visible file is a symlink through ``..data``. An update writes a new timestamped
directory, points ``..data_tmp`` at it and renames that over ``..data`` (the atomic step), then adds
the visible links of new files, removes those of files gone, and deletes the old directory. Between
the rename and the new links a reader sees the new ``active`` before the new key's file: that window
is ``SecretVolume.swap`` followed by ``SecretVolume.link``.
"""

import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

DATA = "..data"
DATA_TMP = "..data_tmp"


class SecretVolume:
    """A Secret volume at ``path`` whose content is replaced whole, the kubelet's way."""

    def __init__(self, path: Path, files: Mapping[str, bytes]) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.write(files)

    def write(self, files: Mapping[str, bytes]) -> None:
        """Replace the content with ``files`` (name -> bytes), every step of the update in order."""
        old = self.swap(files)
        self.link(old)

    def swap(self, files: Mapping[str, bytes]) -> str | None:
        """The first half of an update: the new files in place and ``..data`` renamed over to them.

        Returns the directory ``..data`` named before (for ``link``); visible links are not touched yet."""
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        fresh = Path(tempfile.mkdtemp(prefix=stamp, dir=self.path))
        for name, content in files.items():
            (fresh / name).write_bytes(content)
            (fresh / name).chmod(0o444)
        fresh.chmod(0o755)
        link = self.path / DATA
        old = os.readlink(link) if link.is_symlink() else None
        os.symlink(fresh.name, self.path / DATA_TMP)
        os.rename(self.path / DATA_TMP, link)
        return old

    def link(self, old: str | None) -> None:
        """The second half: a visible link for every new file, none for files gone, the old directory removed."""
        current = {p.name for p in (self.path / DATA).iterdir()}
        for name in current:
            visible = self.path / name
            if not visible.is_symlink():
                os.symlink(f"{DATA}/{name}", visible)
        for visible in self.path.iterdir():
            if visible.is_symlink() and not visible.name.startswith("..") and visible.name not in current:
                visible.unlink()
        if old is not None:
            for stale in (self.path / old).iterdir():
                stale.unlink()
            (self.path / old).rmdir()
