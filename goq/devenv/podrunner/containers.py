"""One container of a pod: its process, its exits and restarts with backoff, and its readiness."""

import asyncio
import contextlib
import datetime
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from goq.devenv.processes import die_with_parent


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial`` doubling up to ``maximum``; back to ``initial`` after a run of ``reset`` s.

    A kubelet starts at 10 s and caps at 5 min; the local defaults are shorter so that demos and tests move.
    """

    initial: float = 1.0
    maximum: float = 30.0
    reset: float = 60.0


@dataclass
class Exit:
    """How the last run of a container ended."""

    code: int
    started: datetime.datetime
    finished: datetime.datetime

    @property
    def reason(self) -> str:
        return "Completed" if self.code == 0 else "Error"


@dataclass
class Container:
    """A container's process across its restarts."""

    name: str
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    started: datetime.datetime | None = None
    restarts: int = 0
    last_exit: Exit | None = None
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    next_start: float = 0.0
    delay: float = 0.0
    ready: bool = False
    done: bool = False
    """Ended and not to be restarted (per ``restartPolicy``)."""
    _monotonic_start: float = field(default=0.0, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        """Start the process (from the event loop's thread: it dies with the runner)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"--- {now().isoformat()} starting: {' '.join(argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.started = now()
        self._monotonic_start = time.monotonic()
        self.waiting_reason = self.waiting_message = ""
        self.ready = False

    def reap(self, restart_policy: str, backoff: Backoff) -> bool:
        """If the process ended: record it, decide whether and when it restarts. True if it just ended."""
        if self.popen is None or (code := self.popen.poll()) is None:
            return False
        assert self.started is not None
        self.last_exit = Exit(code, self.started, now())
        ran = time.monotonic() - self._monotonic_start
        self.popen = None
        self.ready = False
        restart = restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0)
        if not restart:
            self.done = True
            return True
        self.delay = backoff.initial if ran > backoff.reset or not self.delay else min(self.delay * 2, backoff.maximum)
        self.next_start = time.monotonic() + self.delay
        self.waiting_reason = "CrashLoopBackOff"
        self.waiting_message = f"back-off {self.delay:.0f}s restarting failed container {self.name}"
        self.restarts += 1
        return True

    def due(self) -> bool:
        return not self.done and self.popen is None and time.monotonic() >= self.next_start

    async def stop(self, grace: float) -> None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds."""
        popen = self.popen
        if popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while popen.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110 - a process, not an event
            await asyncio.sleep(0.1)
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            while popen.poll() is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        self.done = True
        self.reap("Never", Backoff())
