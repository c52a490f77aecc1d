"""A test session stops the servers it started, whether its tests fail, it is interrupted or killed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from goq.devenv.processes import pid_runs

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import importlib.util

spec = importlib.util.spec_from_file_location("goq_fixtures", "{path}")
fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixtures)
mongo_server = fixtures.mongo_server
"""

REPLICA_SET_CONFTEST = """
import pytest
from goq.devenv.replica_set import MongoReplicaSet

@pytest.fixture
def mongo_server(tmp_path):
    members = MongoReplicaSet(tmp_path / "replica-set")
    members.start()
    members.restart_member(members.kill_primary())  # a restarted member must not stay behind either
    try:
        yield members
    finally:
        members.stop()
"""

INNER_TEST = """
import os, time
from pathlib import Path

def test_uses_mongo(mongo_server):
    servers = getattr(mongo_server, "processes", None) or [mongo_server.process]
    Path(os.environ["PID_FILE"]).write_text(" ".join(str(server.pid) for server in servers))
    if os.environ["HOW"] == "fails":
        raise AssertionError("failing on purpose")
    time.sleep(120)
"""


def wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert process.poll() is None, f"inner pytest ended early: {process.communicate()}"
        assert time.monotonic() < deadline, "inner session never started mongod"
        time.sleep(0.1)
    return path.read_text()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_gone(pid: int, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while pid_runs(pid, "mongod"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize(
    ("servers", "how"),
    [("single", "fails"), ("single", "interrupted"), ("single", "killed"), ("replica-set", "interrupted"),
     ("replica-set", "killed")],
)  # fmt: skip
def test_session_leaves_no_mongod_running(servers: str, how: str, tmp_path: Path) -> None:
    # The inner session uses the real fixtures, loaded by path: the repo root must never be on
    # sys.path, where its operator/ folder would shadow the standard library.
    conftest = CONFTEST.format(path=ROOT / "tests" / "conftest.py") if servers == "single" else REPLICA_SET_CONFTEST
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    pid_file = tmp_path / "mongod.pid"
    env = {**os.environ, "PID_FILE": str(pid_file), "HOW": how, "PYTHONFAULTHANDLER": "1"}
    inner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # A suite started in the background (``cmd &``) inherits SIGINT ignored, and so would the inner
        # session: Python then installs no KeyboardInterrupt handler, and "interrupted" never arrives.
        preexec_fn=_default_sigint,
    )
    pids = [int(pid) for pid in wait_for_file(pid_file, inner).split()]
    if how == "interrupted":
        inner.send_signal(signal.SIGINT)
    elif how == "killed":
        inner.send_signal(signal.SIGKILL)
    try:
        output, _ = inner.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        inner.send_signal(signal.SIGABRT)  # with PYTHONFAULTHANDLER its threads' stacks show where it hangs
        output, _ = inner.communicate(timeout=30)
        pytest.fail(f"the inner session did not end within 60 s after it {how}:\n{output.decode(errors='replace')}")
    assert inner.returncode != 0, output.decode()
    for pid in pids:
        assert wait_gone(pid), f"mongod (pid {pid}) still runs after the session {how}"
