"""`goq-dev` starts servers that outlive it, tells how to reach them, and stops exactly those; an `up` killed
while it starts them leaves nothing the next `up` or `down` cannot find and stop."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pymongo import MongoClient

from goq.devenv.processes import pid_runs, pid_started_at

COMMAND = [sys.executable, "-c", "import sys; from goq.devenv.cli import main; sys.exit(main())"]


def goq_dev(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, "--dir", str(state), *args], capture_output=True, text=True, timeout=120)


def children(pid: int) -> set[int]:
    """``pid``'s child processes (of every thread), from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found.update(int(child) for child in task.read_text().split())
    return found


def recorded_while_starting(state: Path) -> set[int]:
    """The PIDs the state file records while `up` is still starting (nothing once it finished)."""
    try:
        recorded = json.loads((state / "state.json").read_text())
    except (OSError, ValueError):
        return set()
    return {server["pid"] for server in recorded["servers"]} if recorded.get("starting") else set()


@contextlib.contextmanager
def up_killed_while_starting(state: Path) -> Iterator[set[int]]:
    """SIGKILL `goq-dev up --no-kube` once its mongod runs and is recorded, before mongod is ready and `up` returns:
    yields the PIDs of the mongods it had started. At the end, whatever happened, `goq-dev down`, and any of
    those mongods still running is killed by its PID."""
    up = subprocess.Popen([*COMMAND, "--dir", str(state), "up", "--no-kube"], stdout=subprocess.DEVNULL)
    started: set[int] = set()
    try:
        try:
            deadline = time.monotonic() + 60
            while not (started := {c for c in children(up.pid) if pid_runs(c, "mongod")}):
                assert up.poll() is None, "goq-dev up ended before it started mongod"
                assert time.monotonic() < deadline, "goq-dev up started no mongod within 60 s"
                time.sleep(0.005)
            recorded_by = time.monotonic() + 1  # it records each server at once, before waiting for it to be ready
            while not started <= recorded_while_starting(state):
                assert time.monotonic() < recorded_by, f"goq-dev up did not record mongod {started} as it started it"
                time.sleep(0.005)
            assert up.poll() is None, "goq-dev up finished before it was killed: not killed while starting"
        finally:
            up.kill()
            up.wait()
        yield started
    finally:
        goq_dev(state, "down")
        for pid in started:
            if pid_runs(pid, "mongod"):
                os.kill(pid, signal.SIGKILL)


def test_up_env_status_down_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "dev"
    started = goq_dev(state, "up", "--no-kube")
    assert started.returncode == 0, started.stderr
    uri = next(line.split("=", 1)[1].strip("'") for line in started.stdout.splitlines() if "GOQ_MONGODB_URI" in line)
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
            assert client.admin.command("hello")["isWritablePrimary"]
        assert goq_dev(state, "status").returncode == 0
        assert goq_dev(state, "env").stdout == f"export GOQ_MONGODB_URI='{uri}'\n"

        again = goq_dev(state, "up", "--no-kube")
        assert again.returncode == 1
        assert "already up" in again.stderr
    finally:
        pid = int(next(w for w in goq_dev(state, "status").stdout.split() if w.isdigit()))
        stopped = goq_dev(state, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopping mongod (pid {pid})" in stopped.stdout
    assert not pid_runs(pid, "mongod")
    after = goq_dev(state, "status")
    assert after.returncode == 1
    assert after.stdout.startswith("down")


def test_env_without_servers_says_to_start_them(tmp_path: Path) -> None:
    result = goq_dev(tmp_path, "env")
    assert result.returncode == 1
    assert "run `goq-dev up`" in result.stderr


def test_down_after_an_up_killed_while_starting_stops_what_it_started_and_up_works_again(tmp_path: Path) -> None:
    state = tmp_path / "dev"
    with up_killed_while_starting(state) as started:
        assert "interrupted" in goq_dev(state, "status").stdout

        stopped = goq_dev(state, "down")
        assert stopped.returncode == 0, stopped.stderr
        for pid in started:
            assert f"stopping mongod (pid {pid})" in stopped.stdout
            assert not pid_runs(pid, "mongod"), f"mongod {pid}, started by the killed up, still runs"
        assert goq_dev(state, "status").stdout.startswith("down")

        again = goq_dev(state, "up", "--no-kube")
        assert again.returncode == 0, again.stderr
        pid = int(next(w for w in goq_dev(state, "status").stdout.split() if w.isdigit()))
        assert goq_dev(state, "down").returncode == 0
        assert not pid_runs(pid, "mongod")


def test_up_after_an_up_killed_while_starting_stops_what_it_started_and_starts_afresh(tmp_path: Path) -> None:
    state = tmp_path / "dev"
    with up_killed_while_starting(state) as started:
        again = goq_dev(state, "up", "--no-kube")
        assert again.returncode == 0, again.stderr
        assert "stopped while starting" in again.stderr
        for pid in started:
            assert f"stopping mongod (pid {pid})" in again.stderr  # stdout is the environment, for eval
            assert not pid_runs(pid, "mongod"), f"mongod {pid}, started by the killed up, still runs"
        uri = next(line.split("=", 1)[1].strip("'") for line in again.stdout.splitlines() if "GOQ_MONGODB_URI" in line)
        status = goq_dev(state, "status")
        assert status.returncode == 0, status.stdout
        (pid,) = (int(w) for w in status.stdout.split() if w.isdigit())
        try:
            with MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
                assert client.admin.command("hello")["isWritablePrimary"]
        finally:
            stopped = goq_dev(state, "down")
        assert stopped.returncode == 0, stopped.stderr
        assert not pid_runs(pid, "mongod")
        assert not any(pid_runs(p, "mongod") for p in started)


def test_up_and_down_refuse_while_another_up_is_still_starting(tmp_path: Path) -> None:
    """This test stands for an `up` at work: its state records this process as the one starting."""
    state = tmp_path / "dev"
    state.mkdir()
    me = os.getpid()
    starting = {"servers": [], "starting": {"pid": me, "started_at": pid_started_at(me)}}
    (state / "state.json").write_text(json.dumps(starting))

    for command in (["up", "--no-kube"], ["down"]):
        refused = goq_dev(state, *command)
        assert refused.returncode == 1, refused.stdout
        assert f"`goq-dev up` (pid {me}) is still starting" in refused.stderr
    assert json.loads((state / "state.json").read_text()) == starting
    assert goq_dev(state, "status").stdout.startswith(f"starting: `goq-dev up` (pid {me}) is at work")
