"""Undo everything a node changed on the machine, from its record; safe to run any number of times.

Order matters: daemons first (by PID), then every process left in the node's cgroups (containerd's
shims outlive containerd, and containers outlive their shims) and in its namespaces, then the
namespaces' files, paths, kernel settings, cgroups and the network. ``goq.devenv.node.janitor`` runs it
after a killed test session.

The node's daemons write their machine paths (``/var/log/pods``, ``/var/lib/kubelet`` ...) in a mount
namespace of the node's own (``mountns``): nothing of them is on the machine, nothing to undo there
but the namespace's file. Several nodes may run at once (engineers sharing a machine), and two changes
are still the machine's, shared by all of them: the kernel settings the kubelet sets (not namespaced)
and ``/run/netns``. The first node to start writes the machine's state as it found it to
``MACHINE_STATE``; every node copies it into its record (``join``), and the last node to stop restores it.
Nodes take their names (``goq-node-<n>``, the first free) and leave under ``machine_lock``, and a name
is reused once its node is gone: a teardown of a record whose token is no longer in ``/run/<node>/owner``
(a late janitor, a second ``down``) does nothing, as everything named after it is another node's.
"""

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from goq.devenv import processes
from goq.devenv.node import mountns, netns
from goq.devenv.node.record import NodeRecord

log = logging.getLogger("goq.devenv")

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
_MNT_DETACH: Final = 2
KERNEL_SETTINGS: Final = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
"""What the kubelet sets on the whole machine (``protectKernelDefaults: false``); restored by the last node."""
SYSCTL_DIR: Final = Path("/proc/sys")
SHARED_PATHS: Final = (str(netns.NETNS_DIR),)
"""Machine paths the nodes make together (``ip netns add``): removed by the last node, and only when empty."""
MACHINE_STATE: Final = Path("/run/goq-nodes.json")
"""The machine as the first of the running nodes found it: ``{"sysctls": {...}, "paths": [...]}``."""


def other_nodes(name: str) -> list[str]:
    """The other GoQ nodes' namespaces on this machine."""
    if not netns.NETNS_DIR.is_dir():
        return []
    return [n for n in os.listdir(netns.NETNS_DIR) if n.startswith(netns.PREFIX) and n != name]


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """One node at a time takes a name and joins the machine's shared state, or leaves (``flock`` of its directory)."""
    fd = os.open(MACHINE_STATE.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_state() -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(MACHINE_STATE.read_text())
        return state
    except (OSError, ValueError):
        return None


def claim(record: NodeRecord, save: Callable[[], None]) -> None:
    """Under ``machine_lock``: take the node's name, writing its token to ``/run/<node>/owner`` (recorded first)."""
    run_dir = mountns.run_dir(record)
    if str(run_dir) not in record.created_paths:
        record.created_paths.append(str(run_dir))
    save()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "owner").write_text(record.owner)


def _foreign(record: NodeRecord) -> bool:
    """Whether nothing named after the node is its: it never took its name, or another node holds it now."""
    if not record.owner:
        return not record.network_created  # a record from before owners: the name was taken with the network
    try:
        return (mountns.run_dir(record) / "owner").read_text() != record.owner
    except OSError:  # nobody holds the name: what is left of it is this node's
        return False


def join(record: NodeRecord, made_netns_dir: bool) -> None:
    """Under ``machine_lock``, once other nodes see this one (its network namespace exists): record the
    machine's shared state as the first running node found it, before this node changes any of it.

    ``made_netns_dir``: ``/run/netns`` did not exist before this node's. A state left by nodes of which
    none runs any more is stale: its kernel settings are read afresh (its paths are still the nodes').
    """
    state = _read_state()
    if state is None or not other_nodes(record.netns):
        paths = set(state["paths"]) if state else set()
        if made_netns_dir:
            paths.add(str(netns.NETNS_DIR))
        sysctls = {n: (SYSCTL_DIR / n).read_text().strip() for n in KERNEL_SETTINGS}
        state = {"sysctls": sysctls, "paths": sorted(paths)}
        tmp = MACHINE_STATE.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(MACHINE_STATE)
    record.sysctls = dict(state["sysctls"])
    record.created_paths += [p for p in state["paths"] if p not in record.created_paths]


def _restore(sysctls: dict[str, str]) -> None:
    for name, value in sysctls.items():
        with contextlib.suppress(OSError):
            (SYSCTL_DIR / name).write_text(value)


def _empty(directory: Path) -> bool:
    """A shared directory is removed only when empty: ``/run/netns`` may hold namespaces not GoQ's."""
    return directory.is_dir() and not any(directory.iterdir())


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def teardown(record_path: Path) -> list[str]:
    """Undo what the recorded node changed; return what was left that could not be undone (empty: all).

    Under ``machine_lock`` throughout: no node takes the name, or joins, while this one leaves.
    """
    try:
        record = NodeRecord.load(record_path)
    except FileNotFoundError:
        return []
    with machine_lock():
        if _foreign(record):
            return []
        for daemon in reversed(record.daemons):
            if processes.pid_runs(daemon.pid, daemon.executable):
                processes.ServerProcess(daemon.name, daemon.pid, Path(os.devnull), daemon.executable).stop(timeout=10)
        if record.cgroup:
            kill_cgroup(record.cgroup)
        if record.network_created:
            _kill(netns.pids(record.netns))
        if record.mount_namespace:
            _kill(mountns.pids(record))
        unmount_under([Path(p) for p in record.mount_roots])  # the mount namespace's file: it ends with its processes
        netns.delete(record)
        last = not other_nodes(record.netns)
        if last:
            _restore(record.sysctls)
        for path in reversed(record.created_paths):
            if path not in SHARED_PATHS or (last and _empty(Path(path))):
                remove_path(Path(path))
        if last:
            MACHINE_STATE.unlink(missing_ok=True)
        if record.cgroup:
            remove_cgroup(record.cgroup)
    return leftovers(record)


def leftovers(record: NodeRecord) -> list[str]:
    """What of the node is still on the machine, in words (empty when nothing is)."""
    if _foreign(record):
        return []
    left = []
    if netns.exists(record.netns):
        left.append(f"network namespace {record.netns}")
    left += [f"route to {cidr}" for cidr in netns.routes_left(record)]
    last = not other_nodes(record.netns)  # while others run, the shared changes are theirs to keep
    paths = [p for p in record.created_paths if p not in SHARED_PATHS or (last and _empty(Path(p)))]
    if last and MACHINE_STATE.exists():
        left.append(f"path {MACHINE_STATE}")
    left += [f"path {p}" for p in paths if Path(p).exists() or Path(p).is_symlink()]
    left += [f"mount {m}" for m in mounts_under([Path(p) for p in record.mount_roots])]
    if record.mount_namespace:
        left += [f"process {pid} in the node's mount namespace" for pid in mountns.pids(record)]
    left += [f"cgroup {c}" for c in _cgroup_dirs(record.cgroup)] if record.cgroup else []
    for name, value in record.sysctls.items() if last else ():
        with contextlib.suppress(OSError):
            if (now := (SYSCTL_DIR / name).read_text().strip()) != value.strip():
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
