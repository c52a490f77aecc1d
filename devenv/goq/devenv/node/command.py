"""``goq-dev build`` and ``goq-dev node up``: what the real node runs, built once, and a bare node.

``build`` (``make setup`` runs it) builds the node's binaries and runtime (``binaries``) and GoQ's
images and the shop example's from their Dockerfiles (``dockerfiles``), all cached by content: a second
run builds nothing that did not change. ``goq-dev up --with-goq`` and ``goq-dev demo`` start a whole
``GoQCluster``; ``node up`` starts only a control plane serving one node, with nothing installed on it
(install GoQ on it with ``kubectl apply -k manifests/``, docs/development.md). Both are recorded in
``goq-dev``'s state file, so that ``goq-dev down``, ``status`` and ``env`` work on either.
"""

import contextlib
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from goq.devenv import kube
from goq.devenv.node import archive, base_image, binaries, dockerfiles
from goq.devenv.node.node import RealNode
from goq.devenv.node.runtime import Containerd


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.0f} MB"


def build_images(builds: tuple[dockerfiles.Build, ...], say: Callable[[str], None]) -> dict[str, Path]:
    """Build what changed of the node's binaries and the images ``builds``, saying what each took.

    Returns each image's name and its cached archive (as ``dockerfiles.ensure``).
    """
    started = time.monotonic()
    missing = binaries.missing()
    if missing:
        say(f"building the node's binaries and runtime ({', '.join(missing)}): about 6 minutes on 2 cores, once")
    bin_dir = binaries.ensure()
    say(f"node binaries in {bin_dir}: {'built in ' if missing else 'cached, '}{time.monotonic() - started:.1f} s")
    started = time.monotonic()
    base_cached = base_image.archive_path().is_file()
    if not base_cached:
        say(f"making the base image {base_image.BASE_IMAGE} (debootstrap of Debian 12 with Python): about a minute")
    base, base_id = base_image.ensure()
    made = "cached" if base_cached else f"made in {time.monotonic() - started:.0f} s"
    say(f"{base_image.BASE_IMAGE}: {made} ({_megabytes(base)})")
    context = dockerfiles.context_dir()
    todo = []
    for build in dict.fromkeys(builds):
        cached = archive.images_dir() / f"{build.name}-{dockerfiles.input_key(build, base_id, context)}.tar"
        if cached.is_file():
            say(f"{build.image}: cached ({_megabytes(cached)}, inputs unchanged)")
        else:
            todo.append(build)
    if todo:
        say(f"{len(todo)} images to build, their inputs changed (30-90 s each): {', '.join(b.image for b in todo)}")
        started = time.monotonic()
        with _logs_said(say):
            dockerfiles.ensure(tuple(todo))
        say(f"built in {time.monotonic() - started:.0f} s")
    return dockerfiles.ensure(builds)


@contextlib.contextmanager
def _logs_said(say: Callable[[str], None]) -> Iterator[None]:
    """While building, ``goq.devenv``'s log lines (each image's start and seconds) go to ``say`` only."""
    logger = logging.getLogger("goq.devenv")
    saved = logger.level, logger.propagate
    handler = _Say(say)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


class _Say(logging.Handler):
    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        self.say(record.getMessage())


def build() -> int:
    """``goq-dev build``: the control plane's and the node's binaries, GoQ's and the shop's images."""
    print(f"control-plane binaries in {kube.ensure_binaries()}", flush=True)
    build_images(dockerfiles.ALL_BUILDS, lambda line: print(line, flush=True))
    return 0


def up(directory: Path) -> dict[str, Any]:
    """Start a control plane and a bare node, detached; return the state that ``goq-dev down`` stops."""
    workdir = directory / "node"
    if workdir.exists():
        shutil.rmtree(workdir)
    started = time.monotonic()
    archives = build_images(dockerfiles.ALL_BUILDS, lambda line: print(f"# {line}", flush=True))
    node = RealNode(workdir, detached=True)
    node.create_network()
    plane = kube.KubeControlPlane(directory / "kube", node_address=node.host_address, service_cidr=node.service_cidr)
    try:
        timings = plane.start(detached=True)
        timings |= node.start(plane)
        imported = time.monotonic()
        containerd = Containerd(node.record, binaries.runtime_dir(), binaries.tool_path(workdir / "tools"))
        dockerfiles.import_into(containerd, archives)
        timings["importing GoQ's images"] = time.monotonic() - imported
    except BaseException:
        plane.stop()
        node.stop()
        raise
    print(f"# node {node.name} is Ready ({time.monotonic() - started:.0f} s); pods get {node.record.pod_cidr}")
    print(f"# Services {node.service_cidr}; cluster DNS at {node.dns_address}")
    print("# " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
    names = ", ".join(["goq.local/busybox:1", "goq.local/pause:3.4", *archives])
    print(f"# images without a registry: {names} (imagePullPolicy: Never)")
    servers = [{"name": s.name, "pid": s.pid, "executable": s.executable} for s in plane.servers]
    return {
        "servers": servers,
        "node_record": str(node.record_path),
        "kubeconfig": str(plane.kubeconfig),
        "node": node.name,
    }
