"""``goq-dev``: a local MongoDB and Kubernetes control plane for people, outliving the command.

    goq-dev up            start MongoDB and the control plane, print the environment to use them
    goq-dev up --with-goq        ... and GoQ on it: CRDs, the operator with its webhook, the pod runner
    goq-dev up --with-examples   ... and the shop example (examples/shop/)
    goq-dev demo          the whole story, step by step (starts what is missing, stops what it started)
    goq-dev env           print that environment again (eval "$(goq-dev env)")
    goq-dev status        say what runs
    goq-dev down          stop exactly the processes ``up`` started, by their recorded PIDs
    goq-dev build-kube    build the control-plane binaries into the cache (``up`` does it when needed)
    goq-dev node up|down|status|build   a control plane with a real node (kubelet, containerd; opt-in)

State (PIDs, ports, data, logs) lives in ``--dir``, default ``$GOQ_DEV_DIR`` or
``~/.local/state/goq/dev``.
"""

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Final

from goq.devenv import applying, demo, kube, processes, stack
from goq.devenv.errors import DevEnvError
from goq.devenv.mongo import MongoServer
from goq.devenv.progress import Progress

LOCAL_SIDECAR_ENV: Final = {"GOQ_STATUS_INTERVAL": "2s", "GOQ_LOG_FORMAT": "text"}
"""Heartbeats every 2 s, so that ``kubectl get goqueues`` follows closely; readable container logs."""

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


def _explore_lines(state: dict[str, object]) -> list[str]:
    runner = state.get("pod_runner")
    if not isinstance(runner, dict):
        return []
    return [
        "# Pods run as local processes on node goq-local; their container logs are in",
        f"#   {runner['directory']}/pods/<namespace>_<pod>_<uid>/<container>.log",
        "# An application's sidecar listens on its pod IP: point goqctl at one with, e.g.,",
        "#   export GOQ_SIDECAR=$(kubectl get pod -n shop -l app=orders -o jsonpath='{.items[0].status.podIP}'):7701",
        "#   goqctl stats; goqctl send billing '{\"order\": 1}'; goqctl poison list",
        "#   kubectl get pods,goqueues,retrypolicies -n shop -o wide",
    ]


def start(
    directory: Path,
    *,
    with_kube: bool = True,
    with_mongo: bool = True,
    with_goq: bool = False,
    with_examples: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Start the servers detached and record them; refuse if they already run. Returns the state."""
    p = progress or Progress(sys.stderr)
    state = _read_state(directory)
    if state and _running(state):
        raise DevEnvError(f"already up (state in {directory}); run `goq-dev down` first")
    if (with_goq or with_examples) and not (with_kube and with_mongo):
        raise DevEnvError("GoQ needs both MongoDB and the control plane: drop --no-kube/--no-mongo")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    new_state: dict[str, Any] = {"servers": []}
    servers: list[processes.ServerProcess] = []
    try:
        if with_mongo:
            p.step("Starting MongoDB 6.0 (a single-node replica set, as change streams need)")
            mongo = MongoServer(directory / "mongo")
            mongo.start(detached=True)
            assert mongo.process is not None
            servers.append(mongo.process)
            new_state["mongodb_uri"] = mongo.uri
            p.detail(f"mongod ready at {mongo.uri} (pid {mongo.process.pid})")
        if with_kube:
            p.step(f"Starting Kubernetes {kube.KUBE_VERSION}: etcd, kube-apiserver, kube-controller-manager")
            plane = kube.KubeControlPlane(directory / "kube")
            timings = plane.start(detached=True)
            servers.extend(plane.servers)
            new_state["kubeconfig"] = str(plane.kubeconfig)
            new_state["apiserver"] = plane.url
            for name, seconds in timings.items():
                p.detail(f"{name} ready in {seconds:.1f} s")
            p.detail(f"API server at {plane.url}")
        if with_goq or with_examples:
            asyncio.run(_start_goq(directory, new_state, servers, p, with_examples))
    except BaseException:
        for server in reversed(servers):
            server.stop()
        raise
    new_state["servers"] = [
        {"name": s.name, "pid": s.pid, "executable": s.executable, "log": str(s.log_path)} for s in servers
    ]
    _state_file(directory).write_text(json.dumps(new_state, indent=2))
    return new_state


async def _start_goq(
    directory: Path, state: dict[str, Any], servers: list[processes.ServerProcess], p: Progress, examples: bool
) -> None:
    kubeconfig = Path(state["kubeconfig"])
    workdir = directory / "goq"
    api = await stack.connect(kubeconfig)
    try:
        p.step(
            "Installing GoQ: CRDs (GoQueue, RetryPolicy), the goq-system namespace, the sidecars' ClusterRole, "
            "the MongoDB Secret the operator copies into each GoQ namespace"
        )
        for line in await stack.prepare(api):
            p.detail(line)
        p.detail(await stack.mongodb_secret(api, stack.OPERATOR_NAMESPACE, state["mongodb_uri"]))
        p.step("Starting the GoQ operator; the API server will call its sidecar-injection webhook")
        operator = await stack.start_operator(api, kubeconfig, workdir, detached=True)
        servers.append(operator.server)
        state["webhook"] = operator.details["webhook"]
        p.detail(f"goq-operator (pid {operator.server.pid}) serves its webhook at {state['webhook']}; registered")
        p.step("Starting the pod runner: it plays the kubelet of node goq-local and answers DNS for cluster.local")
        runner = await stack.start_pod_runner(kubeconfig, workdir, detached=True, sidecar_env=LOCAL_SIDECAR_ENV)
        servers.append(runner.server)
        state["pod_runner"] = runner.details
        details = runner.details
        p.detail(f"pod runner (pid {runner.server.pid}), DNS at {details['dns']}, pods in {details['directory']}")
        if examples:
            path = stack.repo_root() / "examples" / "shop" / "shop.yaml"
            p.step(f"Applying the shop example ({path.relative_to(stack.repo_root())})")
            docs = applying.documents(path)
            namespaces = [d for d in docs if d["kind"] == "Namespace"]
            for line in await applying.apply_all(api, namespaces):
                p.detail(line)
            for line in await applying.apply_all(api, [d for d in docs if d["kind"] != "Namespace"]):
                p.detail(line)
    finally:
        await api.close()


def up(
    directory: Path, *, with_kube: bool, with_mongo: bool, with_goq: bool = False, with_examples: bool = False
) -> int:
    """``goq-dev up``: start, then print the environment to use what runs."""
    state = start(directory, with_kube=with_kube, with_mongo=with_mongo, with_goq=with_goq, with_examples=with_examples)
    print(f"# GoQ dev servers are up (state in {directory}); use them with:")
    print("\n".join(_env_lines(state)))
    if explore := _explore_lines(state):
        print("\n".join(explore))
        print("# Stop everything with: make down (or goq-dev down)")
    return 0


def run_demo(directory: Path, *, quick: bool, keep: bool) -> int:
    """``goq-dev demo``: start what is missing, play the scenario, stop what it started (unless ``keep``)."""
    progress = Progress()
    logging.getLogger("goq.devenv").setLevel(logging.WARNING)  # the steps say it all
    state = _read_state(directory)
    started_here = not (state and _running(state))
    if started_here:
        print("GoQ demo: everything runs on this machine, on loopback addresses; `make down` stops it.", flush=True)
        state = start(directory, with_goq=True, with_examples=True, progress=progress)
    assert state is not None
    if "pod_runner" not in state:
        raise DevEnvError(f"goq-dev is up without GoQ (state in {directory}); run `goq-dev down` first")
    try:
        asyncio.run(_scenario(state, progress, quick))
    finally:
        if started_here and not keep:
            progress.step("Stopping everything the demo started")
            down(directory)
    if started_here and not keep:
        print("\nThe demo is over. `make up` starts the same and leaves it running for you to explore.", flush=True)
    else:
        print(f"\nThe demo is over; the cluster is still up (state in {directory}): `make down` stops it.", flush=True)
    return 0


async def _scenario(state: dict[str, Any], progress: Progress, quick: bool) -> None:
    kubeconfig = Path(state["kubeconfig"])
    api = await stack.connect(kubeconfig)
    try:
        shop = demo.Shop(api, kubeconfig, Path(state["pod_runner"]["directory"]))
        await demo.run(shop, progress, quick=quick)
    finally:
        await api.close()


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
    start_parser = sub.add_parser("up", help="start MongoDB and the Kubernetes control plane")
    start_parser.add_argument("--no-kube", action="store_true", help="MongoDB only")
    start_parser.add_argument("--no-mongo", action="store_true", help="the control plane only")
    start_parser.add_argument("--with-goq", action="store_true", help="and the operator and the pod runner")
    start_parser.add_argument("--with-examples", action="store_true", help="and GoQ with the shop example")
    demo_parser = sub.add_parser("demo", help="the shop example, step by step")
    demo_parser.add_argument("--quick", action="store_true", help="the short variant (CI)")
    demo_parser.add_argument("--keep", action="store_true", help="leave running what the demo started")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="say what runs")
    sub.add_parser("env", help="print shell exports for the running servers")
    sub.add_parser("build-kube", help="build the control-plane binaries into the cache")
    node_parser = sub.add_parser("node", help="a control plane with a real node: kubelet, containerd (opt-in)")
    node_parser.add_argument("action", choices=["up", "down", "status", "build"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="goq-dev: %(message)s", stream=sys.stderr)
    directory: Path = args.dir or default_dir()
    try:
        match args.command:
            case "up":
                return up(
                    directory,
                    with_kube=not args.no_kube,
                    with_mongo=not args.no_mongo,
                    with_goq=args.with_goq,
                    with_examples=args.with_examples,
                )
            case "demo":
                return run_demo(directory, quick=args.quick, keep=args.keep)
            case "down":
                return down(directory)
            case "status":
                return status(directory)
            case "env":
                return env(directory)
            case "node":
                from goq.devenv.node import command as node_command

                return node_command.main(args.action, directory)
            case _:
                print(kube.ensure_binaries())
                return 0
    except DevEnvError as exc:
        print(f"goq-dev: {exc}", file=sys.stderr)
        return 1
