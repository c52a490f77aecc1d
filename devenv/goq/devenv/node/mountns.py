"""The node's mount namespace: its daemons get ``/var/lib``, ``/var/log`` and ``/run`` of their own.

The kubelet and containerd write to fixed machine paths (``/var/log/pods``, ``/var/log/containers``,
``/var/lib/kubelet/device-plugins``, ``/var/lib/cni``, ``/run/containerd``, ``/run/xtables.lock``,
``/run/mount``). Two nodes sharing them disturb each other: the kubelet's container GC deletes, every
minute, each directory in ``/var/log/pods`` whose pod it does not know, the other node's pods' logs too.
So a node's containerd, kubelet and kube-proxy (and the shims, runc and CNI plugins they start) share a
mount namespace of the node's own, in which ``/var/lib``, ``/var/log`` and ``/run`` are bind mounts of
``<workdir>/fs/var/lib`` ... . The parents are bound, not the paths themselves, because a bind mount
needs its mount point to exist: making ``/var/log/pods`` on the machine would be a shared change again.
The daemons need nothing else of those trees but ``/run/<node>`` (containerd's socket, which tools on the
host use, and its state), bound back in. Everything else the node mounts (the kubelet's root directory,
volumes, containers' root filesystems) happens inside, and is never seen on the host.

The namespace outlives its processes by being bound to the file ``/run/<node>/mnt`` (``unshare
--mount=FILE``), on a private bind mount of ``/run/<node>``, as a namespace's file must not propagate
into the namespace itself. Stopping the node unmounts both: once its processes are gone too, the
namespace and every mount in it vanish.
"""

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from goq.devenv.errors import DevEnvError
from goq.devenv.node import netns
from goq.devenv.node.record import NodeRecord

RUN_DIR: Final = Path("/run")
OWN_TREES: Final = ("var/lib", "var/log", "run")
"""The machine's trees the node's daemons see as their own: bind mounts of ``<workdir>/fs/<tree>``."""
_MS_BIND: Final = 0x1000
_MS_REC: Final = 0x4000
_MS_PRIVATE: Final = 0x40000
_MNT_DETACH: Final = 2


def run_dir(record: NodeRecord) -> Path:
    """``/run/<node>``: containerd's socket and state, and the namespace's file; shared with the host."""
    return RUN_DIR / record.name


def namespace_file(record: NodeRecord) -> Path:
    """The file the node's mount namespace is bound to."""
    return run_dir(record) / "mnt"


def enter(record: NodeRecord, *argv: str) -> list[str]:
    """``argv`` run in the node's network and mount namespaces (the node's daemons)."""
    if not record.mount_namespace:
        raise DevEnvError(f"node {record.name} has no mount namespace yet: call create() first")
    return ["nsenter", f"--net={netns.NETNS_DIR / record.netns}", f"--mount={record.mount_namespace}", *argv]


def _mount(source: Path | None, target: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    src = os.fsencode(source) if source is not None else None
    if libc.mount(src, os.fsencode(target), None, ctypes.c_ulong(flags), None) != 0:
        error = ctypes.get_errno()
        raise DevEnvError(f"mount {source or ''} on {target} (flags {flags:#x}) failed: {os.strerror(error)}")


def _check_outside(paths: list[Path]) -> None:
    """The node's own files must stay visible to its daemons: not under a tree the namespace replaces."""
    for path in paths:
        resolved = path.resolve()
        for tree in OWN_TREES:
            if resolved == Path("/", tree) or Path("/", tree) in resolved.parents:
                raise DevEnvError(
                    f"{path} is under /{tree}, which the node's daemons see as their own (its mount namespace): "
                    "put the node's work directory and GOQ_CACHE elsewhere (e.g. under /tmp or your home)"
                )


def create(record: NodeRecord, save: Callable[[], None], needed: list[Path]) -> None:
    """Make the node's mount namespace (see the module docstring); record it first.

    ``needed`` are paths the daemons must see (work directory, cache): refused if the namespace hides them.
    """
    _check_outside([Path(record.workdir), *needed])
    fs = Path(record.workdir) / "fs"
    for tree in OWN_TREES:
        (fs / tree).mkdir(parents=True, exist_ok=True)
    (fs / "run" / record.name).mkdir(exist_ok=True)
    own_run = run_dir(record)
    own_run.mkdir(parents=True, exist_ok=True)
    record.mount_namespace = str(namespace_file(record))
    save()
    _mount(own_run, own_run, _MS_BIND)
    _mount(None, own_run, _MS_PRIVATE)
    namespace_file(record).touch()
    code = [sys.executable, "-I", "-m", "goq.devenv.node.mountns", str(fs), record.name]
    argv = ["unshare", f"--mount={record.mount_namespace}", "--propagation", "slave", *code]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode:
        raise DevEnvError(f"making the mount namespace of node {record.name} failed: {result.stderr.strip()}")


def pids(record: NodeRecord) -> list[int]:
    """The processes in the node's mount namespace (its daemons, shims, containers), while it is bound."""
    try:
        ns = os.stat(record.mount_namespace)
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                mine = os.stat(f"/proc/{entry}/ns/mnt")
            except OSError:
                continue
            if (mine.st_dev, mine.st_ino) == (ns.st_dev, ns.st_ino):
                found.append(int(entry))
    return found


def _set_up_inside(fs: Path, name: str) -> None:
    """Run inside the new namespace: bind the node's own trees over the machine's, ``/run/<node>`` back in."""
    own_run = Path("/run") / name
    kept = fs / "run" / name
    _mount(own_run, kept, _MS_BIND)  # before /run is replaced: the host's /run/<node>, into the node's /run
    for tree in OWN_TREES:
        _mount(fs / tree, Path("/", tree), _MS_BIND | _MS_REC)
    if ctypes.CDLL(None, use_errno=True).umount2(os.fsencode(kept), _MNT_DETACH) != 0:  # now at /run/<node>
        raise DevEnvError(f"umount {kept}: {os.strerror(ctypes.get_errno())}")


if __name__ == "__main__":
    _set_up_inside(Path(sys.argv[1]), sys.argv[2])
