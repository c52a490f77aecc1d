"""The Python base image GoQ's Dockerfiles build on when no registry is reachable: Debian 12 by debootstrap.

The public Dockerfiles start ``FROM python:3.11-slim-bookworm``; no registry serves it here, so the local
build passes ``BASE=goq.local/python-base:bookworm`` instead: ``debootstrap --variant=minbase`` of Debian 12
with Python 3.11, pip, venv and ``python-is-python3`` (the Dockerfiles call ``python``, as the public image
has it), trimmed of apt lists, docs, man pages and locales. The mirror is the machine's own (its apt
configuration); none is written in the repository. The archive is named by a key of everything that
shapes it, so a second run finds it and builds nothing.
"""

import contextlib
import hashlib
import logging
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Final

from goq.devenv.errors import DevEnvError
from goq.devenv.node import archive

log = logging.getLogger("goq.devenv")

BASE_IMAGE: Final = "goq.local/python-base:bookworm"
SUITE: Final = "bookworm"
PACKAGES: Final = ("python3", "python3-pip", "python3-venv", "python-is-python3")
TRIMMED: Final = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "dev",  # the runtime gives containers their own /dev
)
"""Directories emptied (kept, empty) after debootstrap: nothing in them is needed to run Python."""
ENV: Final = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
_SOURCES: Final = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def debian_mirror() -> str:
    """The main Debian archive's URI from the machine's apt configuration (deb822 or one-line style)."""
    deb822, one_line = _SOURCES
    if deb822.is_file():
        uri = ""
        for line in deb822.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "URIs":
                uri = value.split()[0] if value.split() else ""
            elif key == "Suites" and uri and any(not s.endswith("-security") for s in value.split()):
                return uri.rstrip("/")
    if one_line.is_file():
        for line in one_line.read_text().splitlines():
            words = line.split()
            uri = next((w for w in words[1:] if "://" in w), "")
            if words[:1] == ["deb"] and "security" not in line and uri:
                return uri.rstrip("/")
    raise DevEnvError(f"no Debian mirror in the apt configuration ({deb822} or {one_line}); a base image needs one")


def key() -> str:
    """The content key: everything that shapes the base image (the mirror's address does not)."""
    spec = "\n".join([SUITE, "minbase", *PACKAGES, *TRIMMED, *ENV])
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def archive_path() -> Path:
    """Where the base image's archive is (or will be) cached."""
    return archive.images_dir() / f"python-base-{key()}.tar"


def image_id(path: Path) -> str:
    """The image ID (its config's digest) of a ``docker save`` archive: what a build on top depends on."""
    with tarfile.open(path) as tar:
        return next(Path(m.name).stem for m in tar if m.name.endswith(".json") and m.name != "manifest.json")


def ensure() -> tuple[Path, str]:
    """Return the base image's archive and ID, making it first (about a minute) unless it is cached."""
    path = archive_path()
    if path.is_file():
        return path, image_id(path)
    if not shutil.which("debootstrap"):
        raise DevEnvError("debootstrap is missing: run `make setup` (it installs it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="base-", dir=path.parent) as work:
        rootfs = Path(work) / "rootfs"
        try:
            _debootstrap(rootfs)
        finally:
            _unmount_under(rootfs)
        for directory in TRIMMED:
            target = rootfs / directory
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir(mode=0o755)
        identity = archive.rootfs_archive(rootfs, BASE_IMAGE, ENV, ["python3"], path)
    log.info("base image %s made in %.0f s (%s)", BASE_IMAGE, time.monotonic() - started, path)
    return path, identity


def _debootstrap(rootfs: Path) -> None:
    argv = [
        "nice",
        "-n",
        "19",
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(rootfs),
        debian_mirror(),
    ]
    log.info("debootstrap of Debian %s with %s (about a minute)", SUITE, ", ".join(PACKAGES))
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise DevEnvError(f"debootstrap failed (exit {result.returncode}):\n{tail}")


def _unmount_under(rootfs: Path) -> None:
    """debootstrap mounts /proc and /sys in the target; a failed run may leave them mounted."""
    with contextlib.suppress(OSError):
        prefix = str(rootfs.resolve()) + "/"
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
