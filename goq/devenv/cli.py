"""``goq-dev``: a local MongoDB and Kubernetes control plane for people, outliving the command.

    goq-dev up            start MongoDB and the control plane, print the environment to use them
    goq-dev env           print that environment again (eval "$(goq-dev env)")
    goq-dev status        say what runs
    goq-dev down          stop exactly the processes ``up`` started, by their recorded PIDs
    goq-dev build-kube    build the control-plane binaries into the cache (``up`` does it when needed)

State (PIDs, ports, data, logs) lives in ``--dir``, default ``$GOQ_DEV_DIR`` or
``~/.local/state/goq/dev``.
"""

import argparse
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from goq.devenv import kube, processes
from goq.devenv.errors import DevEnvError
from goq.devenv.mongo import MongoServer

log = logging.getLogger("goq.devenv")


def default_dir() -> Path:
    """Where ``goq-dev`` keeps the state of the servers it started."""
    if named := os.environ.get("GOQ_DEV_DIR"):
        return Path(named)
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "goq" / "dev"


def _state_file(directory: Path) -> Path:
    return directory / "state.json"


def _read_state(directory: Path) -> dict[str, object] | None:
    try:
        state: dict[str, object] = json.loads(_state_file(directory).read_text())
    except FileNotFoundError:
        return None
    return state


def _recorded(state: dict[str, object]) -> list[dict[str, object]]:
    servers = state.get("servers", [])
    return servers if isinstance(servers, list) else []


def _running(state: dict[str, object]) -> list[dict[str, object]]:
    return [s for s in _recorded(state) if processes.pid_runs(int(str(s["pid"])), str(s["executable"]))]


def _env_lines(state: dict[str, object]) -> list[str]:
    lines = []
    if state.get("kubeconfig"):
        lines.append(f"export KUBECONFIG={state['kubeconfig']}")
    if state.get("mongodb_uri"):
        lines.append(f"export GOQ_MONGODB_URI='{state['mongodb_uri']}'")
    return lines


def up(directory: Path, *, with_kube: bool, with_mongo: bool) -> int:
    """Start the servers detached and record them; refuse if they already run."""
    state = _read_state(directory)
    if state and _running(state):
        raise DevEnvError(f"already up (state in {directory}); run `goq-dev down` first")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    state = {"servers": []}
    servers: list[processes.ServerProcess] = []
    try:
        if with_mongo:
            mongo = MongoServer(directory / "mongo")
            mongo.start(detached=True)
            assert mongo.process is not None
            servers.append(mongo.process)
            state["mongodb_uri"] = mongo.uri
        if with_kube:
            plane = kube.KubeControlPlane(directory / "kube")
            plane.start(detached=True)
            servers.extend(plane.servers)
            state["kubeconfig"] = str(plane.kubeconfig)
            state["apiserver"] = plane.url
    except BaseException:
        for server in reversed(servers):
            server.stop()
        raise
    state["servers"] = [
        {"name": s.name, "pid": s.pid, "executable": s.executable, "log": str(s.log_path)} for s in servers
    ]
    _state_file(directory).write_text(json.dumps(state, indent=2))
    print(f"# GoQ dev servers are up (state in {directory}); use them with:")
    print("\n".join(_env_lines(state)))
    return 0


def down(directory: Path) -> int:
    """Stop the recorded servers in reverse order of their start, by PID."""
    state = _read_state(directory)
    if state is None:
        print(f"nothing to stop: no state in {directory}")
        return 0
    for record in reversed(_running(state)):
        server = processes.ServerProcess(
            str(record["name"]), int(str(record["pid"])), Path(str(record["log"])), str(record["executable"])
        )
        print(f"stopping {server.name} (pid {server.pid})")
        server.stop()
    _state_file(directory).unlink()
    return 0


def status(directory: Path) -> int:
    """Print what runs; exit 0 when everything recorded runs, 1 otherwise."""
    state = _read_state(directory)
    if state is None:
        print(f"down (no state in {directory})")
        return 1
    running = {int(str(s["pid"])) for s in _running(state)}
    for record in _recorded(state):
        word = "running" if int(str(record["pid"])) in running else "STOPPED"
        print(f"{record['name']:<26} pid {record['pid']:<8} {word}  log {record['log']}")
    return 0 if len(running) == len(_recorded(state)) else 1


def env(directory: Path) -> int:
    """Print the shell exports that point tools at the running servers."""
    state = _read_state(directory)
    if state is None:
        raise DevEnvError(f"not up (no state in {directory}); run `goq-dev up`")
    print("\n".join(_env_lines(state)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``goq-dev``."""
    parser = argparse.ArgumentParser(prog="goq-dev", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="state directory (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="start MongoDB and the Kubernetes control plane")
    start.add_argument("--no-kube", action="store_true", help="MongoDB only")
    start.add_argument("--no-mongo", action="store_true", help="the control plane only")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="say what runs")
    sub.add_parser("env", help="print shell exports for the running servers")
    sub.add_parser("build-kube", help="build the control-plane binaries into the cache")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="goq-dev: %(message)s", stream=sys.stderr)
    directory: Path = args.dir or default_dir()
    try:
        match args.command:
            case "up":
                return up(directory, with_kube=not args.no_kube, with_mongo=not args.no_mongo)
            case "down":
                return down(directory)
            case "status":
                return status(directory)
            case "env":
                return env(directory)
            case _:
                print(kube.ensure_binaries())
                return 0
    except DevEnvError as exc:
        print(f"goq-dev: {exc}", file=sys.stderr)
        return 1
