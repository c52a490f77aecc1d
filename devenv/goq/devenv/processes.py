"""Server processes started by GoQ's tooling: logs in files, readiness waits, stops by PID.

A server started for a test session is tied to the process that started it (Linux
``PR_SET_PDEATHSIG``), so that even a killed test run leaves nothing behind. A server started by
``goq-dev up`` is detached instead, and its PID is recorded (``recording``, as soon as it is started) so that
``goq-dev down`` stops exactly it.
"""

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from goq.devenv.errors import DevEnvError

log = logging.getLogger("goq.devenv")

_PR_SET_PDEATHSIG = 1

_noting: list[Callable[["ServerProcess"], None]] = []
"""What ``recording`` blocks ask to be told of each server started."""


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn`` that has the kernel kill the child when the thread that started it ends."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ServerProcess:
    """One running server: its name for messages, its PID, and the file its output goes to."""

    name: str
    pid: int
    log_path: Path
    executable: str
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        """Whether the process still runs (a zombie child counts as ended)."""
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def exit_description(self) -> str:
        """`` (code N)`` for an ended child whose exit code is known, else nothing."""
        code = self.popen.poll() if self.popen is not None else None
        return f" (code {code})" if code is not None else ""

    def log_tail(self, lines: int = 25) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the server to stop (SIGTERM), and kill it if it has not stopped after ``timeout`` s."""
        if not self.alive():
            self._reap()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        if not self._wait_ended(timeout):
            log.warning("%s (pid %d) did not stop in %.0f s; killing it", self.name, self.pid, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait_ended(5.0)

    def kill(self) -> None:
        """SIGKILL at once, and wait until it is gone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._wait_ended(10.0)

    def _wait_ended(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                self._reap()
                return True
            time.sleep(0.05)
        return False

    def _reap(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=1)


def start(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    detached: bool = False,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Start ``argv`` with stdout and stderr appended to ``log_path``.

    ``detached=False`` ties the server's life to this process; ``detached=True`` lets it outlive it.
    Either way it gets a session of its own, so a Ctrl-C in the terminal reaches only us, and we stop
    the servers in order.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=None if detached else die_with_parent,
            )
        except OSError as exc:
            raise DevEnvError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    log.debug("started %s (pid %d): %s", name, popen.pid, " ".join(argv))
    server = ServerProcess(name, popen.pid, log_path, os.path.basename(argv[0]), popen)
    for note in _noting:
        note(server)
    return server


@contextlib.contextmanager
def recording(note: Callable[[ServerProcess], None]) -> Iterator[None]:
    """Call ``note`` with each server ``start`` starts within the block, at once, before anyone waits for it to be
    ready: ``goq-dev up`` records each PID so, and an ``up`` killed while it waits leaves no server unrecorded."""
    _noting.append(note)
    try:
        yield
    finally:
        _noting.remove(note)


def wait_until(
    what: str,
    ready: Callable[[], bool],
    server: ServerProcess,
    timeout: float,
    interval: float = 0.1,
) -> float:
    """Poll ``ready`` until it is true; return the seconds waited.

    Fails at once, with the end of the server's log, if the server exits; and after ``timeout`` s.
    """
    start_time = time.monotonic()
    deadline = start_time + timeout
    while True:
        if not server.alive():
            raise DevEnvError(
                f"{server.name} exited{server.exit_description()} while waiting for {what}; "
                f"its log ends:\n{server.log_tail()}"
            )
        if ready():
            return time.monotonic() - start_time
        if time.monotonic() > deadline:
            raise DevEnvError(
                f"{server.name} (pid {server.pid}) not {what} after {timeout:.0f} s; its log ends:\n{server.log_tail()}"
            )
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pid_started_at(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if no such process runs: with the PID, names one
    process even after the PID is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[19])


def pid_runs(pid: int, executable: str) -> bool:
    """Whether ``pid`` is alive and still runs ``executable`` (guards against a reused PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return pid_alive(pid) and bool(cmdline) and os.path.basename(cmdline[0]) == os.fsencode(executable)
