"""`goq-dev` starts servers that outlive it, tells how to reach them, and stops exactly those."""

import subprocess
import sys
from pathlib import Path

from pymongo import MongoClient

from goq.devenv.processes import pid_runs


def goq_dev(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "import sys; from goq.devenv.cli import main; sys.exit(main())"]
    return subprocess.run([*command, "--dir", str(state), *args], capture_output=True, text=True, timeout=120)


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
