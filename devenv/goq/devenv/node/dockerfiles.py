"""GoQ's images built from its own Dockerfiles with Debian's buildah, for a node that reaches no registry.

Each Dockerfile is built on the local Python base (``base_image``) passed as ``--build-arg BASE=...``;
the Dockerfiles keep the public base as the default, so they build unchanged elsewhere. buildah runs
without a daemon, with its storage in the cache (vfs driver) and ``chroot`` isolation: runc under buildah
would need the ``CAP_SYS_RESOURCE`` this kind of VM lacks (see ``runtime``), and the build's only network
is the machine's, for pip. pip in the build is given the machine's pip configuration (``pip config list``,
files and environment alike, merged into one ``pip.conf``) and the local files it names, mounted
read-only for the build only: no index or host name is written in the repository or the image.

An image is cached as a ``docker save`` archive named by a key of its inputs: the Dockerfile, every
file its ``COPY`` lines take from the context, and the base image's ID. A second run builds nothing
that did not change; ``import_into`` loads the archives into the node's containerd.
"""

import contextlib
import fcntl
import fnmatch
import hashlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from goq.devenv import kube
from goq.devenv.errors import DevEnvError
from goq.devenv.node import archive, base_image
from goq.devenv.node.runtime import Containerd

log = logging.getLogger("goq.devenv")

TAG: Final = "local"
"""Images are tagged ``goq.local/<name>:local``: not ``latest``, which the kubelet would try to pull."""
_SKIPPED: Final = ("__pycache__", ".pyc", ".mypy_cache", ".pytest_cache", ".ruff_cache")


@dataclass(frozen=True)
class Build:
    """One image: its Dockerfile (relative to the context), the name it is imported under, build arguments."""

    dockerfile: str
    name: str
    args: tuple[tuple[str, str], ...] = ()
    """``--build-arg`` pairs beside ``BASE`` (the shop example's ``PROGRAM``)."""

    @property
    def image(self) -> str:
        return f"goq.local/{self.name}:{TAG}"


GOQ_BUILDS: Final = (Build("Dockerfile.sidecar", "goq-sidecar"), Build("Dockerfile.operator", "goq-operator"))
SIDECAR_IMAGE: Final = GOQ_BUILDS[0].image
OPERATOR_IMAGE: Final = GOQ_BUILDS[1].image
EXAMPLE_BUILDS: Final = tuple(
    Build("examples/shop/Dockerfile", f"goq-example-{program}", (("PROGRAM", program),))
    for program in ("orders", "billing")
)
"""The shop example's two programs: the application containers of the real node's end-to-end test."""
ALL_BUILDS: Final = GOQ_BUILDS + EXAMPLE_BUILDS


def context_dir() -> Path:
    """The repository's root: the Dockerfiles' build context."""
    return Path(__file__).resolve().parents[4]


def copied_sources(dockerfile: Path, args: tuple[tuple[str, str], ...] = ()) -> list[str]:
    """The context paths a Dockerfile's ``COPY`` lines take (not those ``--from`` another stage).

    ``${NAME}`` in a path is replaced by the build argument ``NAME`` from ``args``.
    """
    sources: list[str] = []
    for line in _instructions(dockerfile):
        for name, value in args:
            line = line.replace(f"${{{name}}}", value)
        words = shlex.split(line)
        if words and words[0].upper() in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def _instructions(dockerfile: Path) -> Iterator[str]:
    """Lines with their continuations joined; comments dropped."""
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""


def input_key(build: Build, base_id: str, context: Path) -> str:
    """A digest of everything the image is made from: Dockerfile, copied files (paths and bytes), base."""
    digest = hashlib.sha256()
    dockerfile = context / build.dockerfile
    digest.update(dockerfile.read_bytes())
    digest.update(base_id.encode())
    if build.args:  # only then: the keys (and cached archives) of builds without arguments stay as they were
        digest.update(repr(build.args).encode())
    for source in copied_sources(dockerfile, build.args):
        top = context / source
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        ignored = dockerignored(context)
        for path in files:
            if any(part.endswith(_SKIPPED) for part in path.parts) or _ignored(path.relative_to(context), ignored):
                continue
            digest.update(str(path.relative_to(context)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def dockerignored(context: Path) -> list[str]:
    """The patterns of the context's ``.dockerignore``: what the builder leaves out, so the key does too (an
    edit of the dev environment rebuilt all four images)."""
    found = context / ".dockerignore"
    if not found.is_file():
        return []
    lines = (line.strip() for line in found.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(path: Path, patterns: list[str]) -> bool:
    """Whether ``.dockerignore``'s ``patterns`` leave ``path`` (relative to the context) out: a pattern names
    a file or a directory (all beneath it), ``*`` within a name, ``**`` any number of directories."""
    text = path.as_posix()
    for pattern in patterns:
        bare = pattern.rstrip("/")
        if fnmatch.fnmatch(text, bare) or text.startswith(bare + "/"):
            return True
        if bare.startswith("**/") and (fnmatch.fnmatch(path.name, bare[3:]) or f"/{bare[3:]}/" in f"/{text}"):
            return True
    return False


def storage_args() -> list[str]:
    """buildah's storage in the cache, vfs (no overlay mounts to leave behind), run state beside it (not /run)."""
    root = kube.cache_dir() / "buildah"
    return ["--root", str(root / "storage"), "--runroot", str(root / "run"), "--storage-driver", "vfs"]


def pip_config(directory: Path) -> list[str]:
    """Write the machine's pip configuration to ``directory/pip.conf``; return buildah ``-v`` mounts for it.

    ``pip config list`` shows the files' settings and the ``PIP_*`` environment's; all go to ``[global]``
    of one file mounted as the build's ``/etc/pip.conf``. Local paths it names (a CA bundle, constraints,
    wheel directories, ``file://`` indexes) are mounted read-only at the same place.
    """
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    files: dict[str, str] = {}
    environment: dict[str, str] = {}  # PIP_* wins over the files, as for pip itself
    for line in listing.splitlines():
        name, _, value = line.partition("=")
        section, _, option = name.rpartition(".")
        if option and value and section in ("global", "install", ":env:"):
            (environment if section == ":env:" else files)[option] = value.strip().strip("'\"")
    settings = files | environment
    conf = directory / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(settings.items())))
    mounts = ["-v", f"{conf}:/etc/pip.conf:ro"]
    seen: set[Path] = set()
    for value in settings.values():
        for word in value.split():
            path = Path(word.removeprefix("file://"))
            if word.startswith("file://"):
                path = path.parent  # an index's pages link to files beside it
            if path.is_absolute() and path.exists() and path not in seen:
                seen.add(path)
                mounts += ["-v", f"{path}:{path}:ro"]
    return mounts


def _buildah(*args: str, what: str) -> str:
    argv = ["nice", "-n", "19", "buildah", *storage_args(), *args]
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, env={**os.environ, "BUILDAH_LAYERS": "false"}
    )
    if result.returncode:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise DevEnvError(f"{what} failed (buildah {' '.join(args[:2])}, exit {result.returncode}):\n{tail}")
    return result.stdout


def ensure(builds: tuple[Build, ...] = GOQ_BUILDS, context: Path | None = None) -> dict[str, Path]:
    """Build what changed; return each image's name and its cached archive. Logs each step's seconds.

    Safe to call from several processes at once (two test sessions, two work trees): each image is built
    under its own lock, so one build of an archive serves every caller waiting for it, and two builds of one
    image name never overwrite each other's tag in buildah's shared storage."""
    context = context or context_dir()
    base_archive, base_id = base_image.ensure()
    wanted = {b: archive.images_dir() / f"{b.name}-{input_key(b, base_id, context)}.tar" for b in builds}
    with tempfile.TemporaryDirectory(prefix="goq-build-") as work:
        mounts: list[str] | None = None
        for build, path in wanted.items():
            with _image_lock(build):
                if not path.is_file():
                    if mounts is None:
                        mounts = _prepare_builds(base_archive, Path(work))
                    _build(build, context, mounts, path)
                os.utime(path)  # used now: what ``_prune`` keeps
                _prune(build, path)
    return {b.image: path for b, path in wanted.items()}


def _prepare_builds(base_archive: Path, work: Path) -> list[str]:
    """Before the first build of a call: buildah present, the base image loaded, pip's configuration mounts."""
    if not shutil.which("buildah"):
        raise DevEnvError("buildah is missing: run `make setup` (it installs it)")
    _buildah("pull", "--quiet", f"docker-archive:{base_archive}", what="loading the base image into buildah")
    return pip_config(work)


@contextlib.contextmanager
def _image_lock(build: Build) -> Iterator[None]:
    """One process at a time builds, exports or prunes ``build``'s image (``flock``, freed if it dies)."""
    directory = archive.images_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{build.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(build: Build, context: Path, mounts: list[str], out: Path) -> None:
    started = time.monotonic()
    log.info("building %s from %s on %s", build.image, build.dockerfile, base_image.BASE_IMAGE)
    _buildah(
        "bud",
        "--isolation=chroot",
        "--network=host",
        "--pull=never",
        "--no-cache",  # no layers are kept anyway (BUILDAH_LAYERS=false); buildah takes --force-rm only with it
        "--force-rm",  # a failed build leaves no working container in the storage
        f"--build-arg=BASE={base_image.BASE_IMAGE}",
        *(f"--build-arg={name}={value}" for name, value in build.args),
        *mounts,
        "-f",
        str(context / build.dockerfile),
        "-t",
        build.image,
        str(context),
        what=f"building {build.image}",
    )
    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    _buildah("push", "--quiet", build.image, f"docker-archive:{partial}:{build.image}", what=f"exporting {build.image}")
    partial.rename(out)
    _buildah("rmi", build.image, what=f"removing {build.image} from buildah's storage")
    log.info("built %s in %.0f s (%s)", build.image, time.monotonic() - started, out)


KEPT_ARCHIVES: Final = 3
"""Archives kept per image, the newest used: the current one and those other work trees or sessions on the
machine used last (a caller between ``ensure`` and its import must not find its archive gone)."""


def _prune(build: Build, keep: Path) -> None:
    """Archives of ``build`` beyond the ``KEPT_ARCHIVES`` used last are of no further use: their inputs changed."""
    archives = sorted(keep.parent.glob(f"{build.name}-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    others = [p for p in archives if p != keep]
    for old in others[KEPT_ARCHIVES - 1 :]:
        old.unlink(missing_ok=True)


def import_into(containerd: Containerd, archives: dict[str, Path]) -> None:
    """Import each archive into the node's containerd (the CRI's namespace); pods use ``imagePullPolicy: Never``."""
    for path in archives.values():
        containerd.import_image(path)
