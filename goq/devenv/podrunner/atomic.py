"""The kubelet's atomic writer: a Secret or ConfigMap volume whose content is replaced whole, never half.

Layout, as a kubelet makes it: the files live in a hidden timestamped directory ``..<timestamp>/``;
``..data`` is a symlink to it; every visible entry is a symlink through it (``key -> ..data/key``). An
update writes a fresh timestamped directory, points ``..data_tmp`` at it and renames that over
``..data`` (the one atomic step: a reader sees the old files or the new ones), then adds the visible
links of new entries, removes those of entries gone, and deletes the old directory. Nothing is
written when the content is unchanged, so a reader following ``..data`` sees a swap only for a change.
(``goq.devenv.secret_volume`` is the same layout for tests that need the update's two halves apart.)
"""

import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Final

from goq.devenv.errors import DevEnvError

DATA: Final = "..data"
DATA_TMP: Final = "..data_tmp"
FILE_MODE: Final = 0o600
"""Secret material: readable by the pod's processes (this user) only."""


def current(folder: Path) -> dict[str, bytes] | None:
    """The files ``..data`` shows now (relative path -> content); ``None`` before the first write."""
    data = folder / DATA
    if not data.is_dir():
        return None
    return {p.relative_to(data).as_posix(): p.read_bytes() for p in data.rglob("*") if p.is_file()}


def _checked(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts or relative.parts[0].startswith(".."):
        raise DevEnvError(f"volume path {path!r} must be relative, without '..' and not start with '..'")
    return relative


def write(folder: Path, files: Mapping[str, bytes]) -> bool:
    """Make ``folder`` show exactly ``files`` (relative path -> content); True if it changed (a swap)."""
    paths = {_checked(p): content for p, content in files.items()}
    if current(folder) == {p.as_posix(): c for p, c in paths.items()}:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()), dir=folder))
    for path, content in paths.items():
        target = fresh / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(FILE_MODE)
    data, tmp = folder / DATA, folder / DATA_TMP
    old = os.readlink(data) if data.is_symlink() else None
    tmp.unlink(missing_ok=True)  # left by a runner stopped mid-update
    os.symlink(fresh.name, tmp)
    os.rename(tmp, data)
    visible = {p.parts[0] for p in paths}
    for name in visible:
        if not (folder / name).is_symlink():
            os.symlink(f"{DATA}/{name}", folder / name)
    for entry in folder.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in visible:
            entry.unlink()
    if old is not None and old != fresh.name:
        shutil.rmtree(folder / old, ignore_errors=True)
    return True
