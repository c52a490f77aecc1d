"""Client processes of the benchmark and what /proc says about the servers: CPU time and resident memory.

Every client process is started here and remembered, so that the runner kills exactly those (by PID) on the
way out, also on failure or Ctrl-C.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET = 0.10
"""A latency run starts once less than this share of the cores is busy (nothing of the last phase left)."""
QUIET_WAIT = 60.0
"""Most seconds a latency run waits for that."""
RUNNING: list[subprocess.Popen[str]] = []


class BenchError(Exception):
    """A scenario could not be measured (a client failed or a server did not start); the message says which."""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy(window: float = 0.5) -> float:
    """The share of all cores busy over ``window`` seconds (from /proc/stat: everything but idle and iowait)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(values), values[3] + values[4]

    total, idle = sample()
    time.sleep(window)
    total_after, idle_after = sample()
    return 1.0 - (idle_after - idle) / max(1, total_after - total)


def wait_quiet(busy_below: float = QUIET, longest: float = QUIET_WAIT) -> float:
    """Wait until the machine is quiet (what the last phase left, e.g. a store's checkpoint, is done), at
    most ``longest`` seconds; the seconds waited."""
    start = time.monotonic()
    while machine_busy() >= busy_below and time.monotonic() - start < longest:
        pass
    return time.monotonic() - start


def rss_mb(pid: int) -> float:
    """Resident memory in MB (0.0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def spawn(argv: list[str]) -> subprocess.Popen[str]:
    """A Python client process whose last stdout line will be its JSON result."""
    process = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True)
    RUNNING.append(process)
    return process


def wait_ready(process: subprocess.Popen[str], what: str) -> None:
    """A consumer prints ``ready`` once it is attached; the producer starts only then."""
    if process.stdout is None or process.stdout.readline().strip() != "ready":
        raise BenchError(f"{what}: the consumer did not start")


def finish(process: subprocess.Popen[str], what: str, timeout: float = 1800) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout)
    RUNNING.remove(process)
    if process.returncode != 0:
        raise BenchError(f"{what} failed (exit status {process.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def kill_clients() -> None:
    for process in RUNNING:
        process.kill()
    RUNNING.clear()
