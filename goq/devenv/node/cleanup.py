"""Undo everything a node changed on the machine, from its record; safe to run any number of times.

Order matters: daemons first (by PID), then every process left in the node's cgroups (containerd's
shims outlive containerd, and containers outlive their shims), then mounts, paths, kernel settings,
cgroups and the network. ``goq.devenv.node.janitor`` runs it after a killed test session.

Several nodes may run at once (engineers sharing a machine), and some of what a node changes is the
machine's, shared by all of them: the ``SYSTEM_PATHS`` the kubelet and containerd make, ``/run/netns``
and the kernel settings. Only a node that starts while no other runs records them, and one that stops
while others run does not undo them under their feet: it hands them over in ``SHARED_STATE``, and the
last node to stop undoes them.
"""

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, Final

from goq.devenv import processes
from goq.devenv.node import netns
from goq.devenv.node.record import NodeRecord

log = logging.getLogger("goq.devenv")

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
_MNT_DETACH: Final = 2
SYSTEM_PATHS: Final = (
    "/var/lib/kubelet",  # device-plugins/, made even with --root-dir elsewhere
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/cni",  # the CNI library's result cache
    "/run/containerd",  # the shims' sockets
    "/run/xtables.lock",
    "/run/mount",  # util-linux's utab, written by the kubelet's mount calls
)
"""Paths the node's daemons make outside its work directory; removed on stop unless they existed before."""
SHARED_PATHS: Final = (*SYSTEM_PATHS, str(netns.NETNS_DIR))
SHARED_STATE: Final = Path("/run/goq-nodes-shared.json")
"""Shared changes handed over by a node that stopped while others ran: ``{"paths": [...], "sysctls": {...}}``."""


def other_nodes(name: str) -> list[str]:
    """The other GoQ nodes' namespaces on this machine."""
    if not netns.NETNS_DIR.is_dir():
        return []
    return [n for n in os.listdir(netns.NETNS_DIR) if n.startswith(netns.PREFIX) and n != name]


def _read_shared() -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(SHARED_STATE.read_text())
        return state
    except (OSError, ValueError):
        return {"paths": [], "sysctls": {}}


def _hand_over(paths: list[str], sysctls: dict[str, str]) -> None:
    """Leave shared changes to the last node: earlier values of a kernel setting win (they are the machine's)."""
    state = _read_shared()
    state["paths"] = sorted(set(state.get("paths", [])) | set(paths))
    state["sysctls"] = {**sysctls, **state.get("sysctls", {})}
    tmp = SHARED_STATE.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(SHARED_STATE)


def _restore(sysctls: dict[str, str]) -> None:
    for name, value in sysctls.items():
        with contextlib.suppress(OSError):
            Path("/proc/sys", name).write_text(value)


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
    others = other_nodes(record.netns)
    shared = [p for p in record.created_paths if p in SHARED_PATHS]
    if others:
        _hand_over(shared, record.sysctls)
    else:
        _restore(record.sysctls)
    netns.delete(record)
    for path in reversed(record.created_paths):
        if not (others and path in shared):
            remove_path(Path(path))
    if not others and SHARED_STATE.exists():  # the last node out: what the others handed over
        state = _read_shared()
        _restore(state.get("sysctls", {}))
        for path in state.get("paths", []):
            remove_path(Path(path))
        SHARED_STATE.unlink(missing_ok=True)
    if record.cgroup:
        remove_cgroup(record.cgroup)
    return leftovers(record)


def leftovers(record: NodeRecord) -> list[str]:
    """What of the node is still on the machine, in words (empty when nothing is)."""
    left = []
    if netns.exists(record.netns):
        left.append(f"network namespace {record.netns}")
    left += [f"route to {cidr}" for cidr in netns.routes_left(record)]
    others = other_nodes(record.netns)  # while they run, shared changes are theirs to keep
    paths = [p for p in record.created_paths if not (others and p in SHARED_PATHS)]
    sysctls = {} if others else record.sysctls
    if not others and SHARED_STATE.exists():
        left.append(f"path {SHARED_STATE}")
    left += [f"path {p}" for p in paths if Path(p).exists() or Path(p).is_symlink()]
    left += [f"mount {m}" for m in mounts_under([Path(p) for p in record.mount_roots])]
    left += [f"cgroup {c}" for c in _cgroup_dirs(record.cgroup)] if record.cgroup else []
    for name, value in sysctls.items():
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
