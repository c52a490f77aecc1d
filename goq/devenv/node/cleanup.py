"""Undo everything a node changed on the machine, from its record; safe to run any number of times.

Order matters: daemons first (by PID), then every process left in the node's cgroups (containerd's
shims outlive containerd, and containers outlive their shims), then mounts, paths, kernel settings,
cgroups and the network. ``goq.devenv.node.janitor`` runs it after a killed test session.
"""

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Final

from goq.devenv import processes
from goq.devenv.node import netns
from goq.devenv.node.record import NodeRecord

log = logging.getLogger("goq.devenv")

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
_MNT_DETACH: Final = 2


def teardown(record_path: Path) -> list[str]:
    """Undo what the recorded node changed; return what was left that could not be undone (empty: all)."""
    try:
        record = NodeRecord.load(record_path)
    except FileNotFoundError:
        return []
    for daemon in reversed(record.daemons):
        if processes.pid_runs(daemon.pid, daemon.executable):
            processes.ServerProcess(daemon.name, daemon.pid, Path(os.devnull), daemon.executable).stop(timeout=10)
    if record.cgroup:
        kill_cgroup(record.cgroup)
    if record.network_created:
        for pid in netns.pids(record.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    unmount_under([Path(p) for p in record.mount_roots])
    for name, value in record.sysctls.items():
        with contextlib.suppress(OSError):
            Path("/proc/sys", name).write_text(value)
    netns.delete(record)
    for path in map(Path, reversed(record.created_paths)):
        remove_path(path)
    if record.cgroup:
        remove_cgroup(record.cgroup)
    return leftovers(record)


def leftovers(record: NodeRecord) -> list[str]:
    """What of the node is still on the machine, in words (empty when nothing is)."""
    left = []
    if netns.exists(record.netns):
        left.append(f"network namespace {record.netns}")
    left += [f"path {p}" for p in record.created_paths if Path(p).exists() or Path(p).is_symlink()]
    left += [f"mount {m}" for m in mounts_under([Path(p) for p in record.mount_roots])]
    left += [f"cgroup {c}" for c in _cgroup_dirs(record.cgroup)] if record.cgroup else []
    for name, value in record.sysctls.items():
        with contextlib.suppress(OSError):
            if (now := Path("/proc/sys", name).read_text().strip()) != value.strip():
                left.append(f"sysctl {name} = {now} (was {value.strip()})")
    left += [f"process {d.name} (pid {d.pid})" for d in record.daemons if processes.pid_runs(d.pid, d.executable)]
    return left


def _cgroup_dirs(name: str) -> list[Path]:
    return [h / name for h in CGROUP_ROOT.iterdir() if (h / name).is_dir()] if CGROUP_ROOT.is_dir() else []


def _cgroup_pids(name: str) -> set[int]:
    found: set[int] = set()
    for top in _cgroup_dirs(name):
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                found.update(int(line) for line in procs.read_text().split())
    return found


def kill_cgroup(name: str, timeout: float = 15.0) -> None:
    """SIGKILL every process in the cgroup ``name`` (all hierarchies) until none is left."""
    deadline = time.monotonic() + timeout
    while (pids := _cgroup_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def remove_cgroup(name: str) -> None:
    """Remove the cgroup ``name`` and its children, deepest first, in every hierarchy."""
    for top in _cgroup_dirs(name):
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir_retrying(directory)
        _rmdir_retrying(top)


def _rmdir_retrying(directory: Path) -> None:
    for _ in range(50):  # a cgroup whose last process just died is busy for a moment
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    log.warning("cannot remove cgroup %s", directory)


def _unescape(field: str) -> str:
    """Mount points in mountinfo have spaces and the like as octal escapes (``\\040``)."""
    return field.encode().decode("unicode_escape")


def mounts_under(roots: list[Path]) -> list[Path]:
    """Mount points at or below any of ``roots``, deepest first."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        point = Path(_unescape(line.split()[4]))
        if any(point == root or root in point.parents for root in roots):
            found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_under(roots: list[Path]) -> None:
    """Unmount (lazily) everything at or below ``roots``; a bind mount stacked twice is unmounted twice."""
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(5):
        points = mounts_under(roots)
        if not points:
            return
        for point in points:
            if libc.umount2(os.fsencode(point), _MNT_DETACH) != 0:
                log.debug("umount %s: %s", point, os.strerror(ctypes.get_errno()))


def remove_path(path: Path) -> None:
    """Remove a file, or a directory with its content; unmount it first if it is a mount point."""
    unmount_under([path])
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
