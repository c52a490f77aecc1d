"""``goq-dev``: a local MongoDB and Kubernetes for people, outliving the command.

    goq-dev up            start MongoDB and the control plane on loopback, print the environment to use them
                          (run sidecars locally against them)
    goq-dev up --with-goq        a real node instead: the control plane, one node (containerd, kubelet,
                                 kube-proxy, cluster DNS), MongoDB on the node, GoQ from ``kubectl apply -k``
    goq-dev up --with-examples   ... and the shop example (examples/shop/)
    goq-dev demo          the whole story, step by step (starts what is missing, stops what it started)
    goq-dev env           print that environment again (eval "$(goq-dev env)")
    goq-dev status        say what runs
    goq-dev down          stop exactly what ``up`` started, by its recorded PIDs, and undo what the node changed
    goq-dev build         build the control-plane and node binaries and GoQ's images into the cache
                          (``make setup`` does; ``up`` builds what changed)
    goq-dev build-kube    build the control-plane binaries only
    goq-dev node up       a control plane with a bare node (no GoQ on it), recorded like ``up``

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
import time
from pathlib import Path
from typing import Any, Final, TextIO

from goq.devenv import demo, kube, processes, shop
from goq.devenv.errors import DevEnvError
from goq.devenv.mongo import MongoServer
from goq.devenv.node import cleanup, dockerfiles
from goq.devenv.node import command as node_command
from goq.devenv.node.cluster import SHOP_NAMESPACE, GoQCluster, Timings, stop_recorded
from goq.devenv.node.record import NodeRecord
from goq.devenv.progress import Progress

LOCAL_SIDECAR_ENV: Final = "GOQ_STATUS_INTERVAL=2s,GOQ_LOG_FORMAT=text"
"""The operator's ``GOQ_SIDECAR_ENV`` here: heartbeats every 2 s, so that ``kubectl get goqueues`` follows
closely, and container logs for people."""

MAX_NODE_DIR: Final = 60
"""The longest state directory for a node: the kubelet's sockets (``node/kubelet/root/pod-resources/<9 digits>``,
42 characters more) must fit a unix socket's 107."""

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


def _write_state(directory: Path, state: dict[str, Any]) -> None:
    """Replace the state file whole (a rename): a command killed meanwhile leaves the old one or the new one."""
    partial = directory / "state.json.partial"
    partial.write_text(json.dumps(state, indent=2))
    partial.replace(_state_file(directory))


def _server_record(server: processes.ServerProcess) -> dict[str, object]:
    return {"name": server.name, "pid": server.pid, "executable": server.executable, "log": str(server.log_path)}


def _starter(state: dict[str, object]) -> int | None:
    """The PID of the ``goq-dev up`` still starting what ``state`` records, if it runs; None once it finished or
    when it was killed (what it started is then recorded, for ``down`` or the next ``up`` to stop)."""
    starting = state.get("starting")
    if not isinstance(starting, dict):
        return None
    pid = int(str(starting["pid"]))
    return pid if processes.pid_started_at(pid) == starting.get("started_at") else None


def _refuse_while_starting(directory: Path, state: dict[str, object]) -> None:
    if (pid := _starter(state)) is not None:
        raise DevEnvError(
            f"`goq-dev up` (pid {pid}) is still starting the servers in {directory}: wait for it, or stop it with "
            "Ctrl-C (it stops what it started)"
        )


def _stop(state: dict[str, object], *, out: TextIO | None = None) -> None:
    """Stop the recorded servers that run, in reverse order of their start, by PID; each said on ``out``."""
    for record in reversed(_running(state)):
        server = processes.ServerProcess(
            str(record["name"]),
            int(str(record["pid"])),
            Path(str(record.get("log", "/dev/null"))),
            str(record["executable"]),
        )
        print(f"stopping {server.name} (pid {server.pid})", file=out or sys.stdout, flush=True)
        server.stop()


def _env_lines(state: dict[str, object]) -> list[str]:
    lines = []
    if state.get("kubeconfig"):
        lines.append(f"export KUBECONFIG={state['kubeconfig']}")
    if state.get("mongodb_uri"):
        lines.append(f"export GOQ_MONGODB_URI='{state['mongodb_uri']}'")
    return lines


def _explore_lines(state: dict[str, object]) -> list[str]:
    if not state.get("goq"):
        return []
    lines = [
        f"# GoQ runs on node {state['node']}: a kubelet and containerd; explore with kubectl and .venv/bin/goqctl:",
        "#   kubectl get pods,goqueues,retrypolicies -n shop -o wide",
        "#   kubectl -n shop logs deploy/billing -c app -f        # billing's invoices",
        "#   kubectl -n shop logs deploy/orders -c goq-sidecar    # orders' sidecar",
        "#   kubectl -n shop exec deploy/orders -c app -- goqctl stats   # in the pod: its sidecar on 127.0.0.1",
        "#   goqctl -n shop --identity orders stats                # through the API server, as kubectl does",
        "#   goqctl -n shop --identity orders send billing '{\"order\": 1}'",
        "#   goqctl -n shop --identity orders poison list",
        "#   goqctl list -A",
    ]
    if not state.get("examples"):
        lines = [line for line in lines if "shop" not in line]
    return lines


def start(
    directory: Path,
    *,
    with_kube: bool = True,
    with_mongo: bool = True,
    with_goq: bool = False,
    with_examples: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Start the servers detached and record them; refuse if they already run. Returns the state.

    With GoQ (or the examples) that is a ``GoQCluster`` on a real node; else MongoDB and the control
    plane on loopback, for sidecars run locally.
    """
    p = progress or Progress(sys.stderr)
    if with_goq or with_examples:
        _check_node_dir(directory)
    _fresh(directory)
    if with_goq or with_examples:
        if not (with_kube and with_mongo):
            raise DevEnvError("GoQ needs both MongoDB and the control plane: drop --no-kube/--no-mongo")
        logging.getLogger("goq.devenv").setLevel(logging.WARNING)  # the steps say it all, with each one's time
        return _start_cluster(directory, p, examples=with_examples)
    me = os.getpid()
    new_state: dict[str, Any] = {"servers": [], "starting": {"pid": me, "started_at": processes.pid_started_at(me)}}
    servers: list[processes.ServerProcess] = []

    def started(server: processes.ServerProcess) -> None:
        """Record each server as soon as it runs, before it is waited for: killed meanwhile (a SIGKILL, a
        closed terminal), this command leaves nothing ``down`` or the next ``up`` cannot find and stop."""
        servers.append(server)
        new_state["servers"].append(_server_record(server))
        _write_state(directory, new_state)

    _write_state(directory, new_state)
    try:
        with processes.recording(started):
            _start_servers(directory, new_state, p, with_mongo=with_mongo, with_kube=with_kube)
    except BaseException:
        for server in reversed(servers):
            server.stop()
        _state_file(directory).unlink(missing_ok=True)
        raise
    del new_state["starting"]
    _write_state(directory, new_state)
    return new_state


def _start_servers(
    directory: Path, new_state: dict[str, Any], p: Progress, *, with_mongo: bool, with_kube: bool
) -> None:
    """MongoDB and the control plane, detached; what to reach them by into ``new_state``."""
    if with_mongo:
        p.step("Starting MongoDB 6.0 (a single-node replica set, as change streams need)")
        mongo = MongoServer(directory / "mongo")
        mongo.start(detached=True)
        assert mongo.process is not None
        new_state["mongodb_uri"] = mongo.uri
        p.detail(f"mongod ready at {mongo.uri} (pid {mongo.process.pid})")
    if with_kube:
        p.step(f"Starting Kubernetes {kube.KUBE_VERSION}: etcd, kube-apiserver, kube-controller-manager")
        plane = kube.KubeControlPlane(directory / "kube")
        timings = plane.start(detached=True)
        new_state["kubeconfig"] = str(plane.kubeconfig)
        new_state["apiserver"] = plane.url
        for name, seconds in timings.items():
            p.detail(f"{name} ready in {seconds:.1f} s")
        p.detail(f"API server at {plane.url}")


def _check_node_dir(directory: Path) -> None:
    """Refuse a state directory too long for the kubelet's sockets, before anything is started."""
    if len(str(directory.resolve())) > MAX_NODE_DIR:
        raise DevEnvError(
            f"the state directory {directory} is too long for a node ({len(str(directory.resolve()))} characters): "
            f"the kubelet's sockets are made under it, and a socket's path may have 107 at most; use --dir (or "
            f"GOQ_DEV_DIR) with at most {MAX_NODE_DIR}"
        )


def _fresh(directory: Path) -> None:
    """Refuse if what ``directory`` records still runs; else empty it. What an interrupted ``up`` started is
    stopped first: nobody else knows of it."""
    state = _read_state(directory)
    if state and state.get("starting"):
        _refuse_while_starting(directory, state)
        print(
            f"goq-dev: an earlier `goq-dev up` was stopped while starting (state in {directory}); "
            "stopping what it started",
            file=sys.stderr,
            flush=True,
        )
        _stop(state, out=sys.stderr)  # stdout is for the environment ``up`` prints
    elif state and (_running(state) or _node_runs(state)):
        raise DevEnvError(f"already up (state in {directory}); run `goq-dev down` first")
    if state and state.get("node_record"):
        cleanup.teardown(Path(str(state["node_record"])))  # a node left half-stopped: undo it before reusing
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


class _ShownTimings(Timings):
    """The cluster's timings, each printed as its step ends: a start of a minute or more shows its progress."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def add(self, step: str, started: float) -> None:
        super().add(step, started)
        self.progress.detail(f"{step}: {self.steps[step]:.1f} s")


def _start_cluster(directory: Path, p: Progress, *, examples: bool) -> dict[str, Any]:
    """A ``GoQCluster``, detached, recorded in the state file; the steps printed as they happen."""
    started = time.monotonic()
    builds = dockerfiles.ALL_BUILDS if examples else dockerfiles.GOQ_BUILDS
    p.step(
        "Building what the node runs (once; cached): Kubernetes' node binaries, and GoQ's images from "
        f"its Dockerfiles with buildah: {', '.join(dict.fromkeys(b.dockerfile for b in builds))}"
    )
    node_command.build_images(builds, p.detail)
    cluster = GoQCluster(directory, detached=True, operator_env={"GOQ_SIDECAR_ENV": LOCAL_SIDECAR_ENV})
    cluster.timings = _ShownTimings(p)
    p.step(
        f"Starting Kubernetes {kube.KUBE_VERSION} with a real node, {cluster.node.name}: etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler; containerd, the kubelet, kube-proxy and cluster DNS in a "
        "network namespace of their own; MongoDB on the node; GoQ with `kubectl apply -k manifests/`"
        + ("; the shop example" if examples else "")
    )
    cluster.start(examples=examples)  # stops what it started if it fails
    try:
        state: dict[str, Any] = {**cluster.record(), "goq": True, "examples": examples}
        _state_file(directory).write_text(json.dumps(state, indent=2))
        record = cluster.node.record
        p.detail(f"up in {time.monotonic() - started:.0f} s; node {record.name} at {record.node_address}")
        p.detail(f"pods get addresses from {record.pod_cidr}, Services from {record.service_cidr}")
        p.step(
            "GoQ is installed as users install it (docs/deploy.md): CRDs, RBAC, the operator as a Deployment "
            "of two pods, its webhooks behind its Service; the operator injects every sidecar"
        )
        p.detail("$ kubectl -n goq-system get pods -o wide")
        p.detail(cluster.kubectl("-n", "goq-system", "get", "pods", "-o", "wide").rstrip())
        if examples:
            p.step("The shop example (examples/shop/shop.yaml) on the images built here: two Deployments, no sidecar")
            p.detail(f"$ kubectl -n {SHOP_NAMESPACE} get retrypolicies,goqueues,deployments")
            p.detail(cluster.kubectl("-n", SHOP_NAMESPACE, "get", "retrypolicies,goqueues,deployments").rstrip())
    except BaseException:
        cluster.stop()
        _state_file(directory).unlink(missing_ok=True)
        raise
    return state


def up(
    directory: Path, *, with_kube: bool, with_mongo: bool, with_goq: bool = False, with_examples: bool = False
) -> int:
    """``goq-dev up``: start, then print the environment to use what runs."""
    state = start(directory, with_kube=with_kube, with_mongo=with_mongo, with_goq=with_goq, with_examples=with_examples)
    print(f"# GoQ dev servers are up (state in {directory}); use them with:")
    print("\n".join(_env_lines(state)))
    if explore := _explore_lines(state):
        print("\n".join(explore))
    if state.get("node_record"):
        print("# Stop everything, undoing what the node changed on this machine: make down (or goq-dev down)")
    return 0


def node_up(directory: Path) -> int:
    """``goq-dev node up``: a control plane and a bare node (no GoQ), recorded as ``up`` records."""
    _check_node_dir(directory)
    _fresh(directory)
    state = node_command.up(directory)
    _state_file(directory).write_text(json.dumps(state, indent=2))
    print(f"export KUBECONFIG={state['kubeconfig']}")
    print("# stop it, undoing everything it changed: goq-dev down")
    return 0


def run_demo(directory: Path, *, quick: bool, keep: bool) -> int:
    """``goq-dev demo``: start what is missing, play the scenario, stop what it started (unless ``keep``)."""
    progress = Progress()
    logging.getLogger("goq.devenv").setLevel(logging.WARNING)  # the steps say it all
    state = _read_state(directory)
    started_here = not (state and _running(state))
    if started_here:
        print(
            "GoQ demo: a real Kubernetes node on this machine (its own network namespace, loopback and a veth "
            "pair only); it stops everything at the end, and `make down` does if it is interrupted.",
            flush=True,
        )
        state = start(directory, with_goq=True, with_examples=True, progress=progress)  # stops itself on failure
    assert state is not None
    if not state.get("examples"):
        raise DevEnvError(f"goq-dev is up without the shop example (state in {directory}); run `goq-dev down` first")
    try:
        asyncio.run(_scenario(state, progress, quick))
    finally:
        if started_here and not keep:
            progress.step("Stopping everything the demo started, and undoing what the node changed")
            down(directory)
    if started_here and not keep:
        print("\nThe demo is over. `make up` starts the same and leaves it running for you to explore.", flush=True)
    else:
        print(f"\nThe demo is over; the cluster is still up (state in {directory}): `make down` stops it.", flush=True)
    return 0


async def _scenario(state: dict[str, Any], progress: Progress, quick: bool) -> None:
    from kubernetes_asyncio import config

    kubeconfig = Path(state["kubeconfig"])
    api = await config.new_client_from_config(config_file=str(kubeconfig))
    try:
        found = shop.ClusterShop(api, kubeconfig, shop.node_containerd(Path(state["node_record"])))
        await demo.run(found, progress, quick=quick)
    finally:
        await api.close()


def _node_runs(state: dict[str, object]) -> bool:
    path = state.get("node_record")
    if not path:
        return False
    try:
        record = NodeRecord.load(Path(str(path)))
    except FileNotFoundError:
        return False
    return any(processes.pid_runs(d.pid, d.executable) for d in record.daemons)


def down(directory: Path) -> int:
    """Stop the recorded servers in reverse order of their start, by PID; then the node, undoing what it changed."""
    state = _read_state(directory)
    if state is None:
        print(f"nothing to stop: no state in {directory}")
        return 0
    _refuse_while_starting(directory, state)
    _stop(state)
    left: list[str] = []
    if path := state.get("node_record"):
        try:
            node = NodeRecord.load(Path(str(path)))
        except FileNotFoundError:
            node = None
        if node is not None:
            for daemon in reversed(node.daemons):
                if processes.pid_runs(daemon.pid, daemon.executable):
                    print(f"stopping {daemon.name} (pid {daemon.pid})", flush=True)
            print(f"stopping node {node.name}'s containers and undoing what it changed on this machine", flush=True)
        left = stop_recorded(state)
        for what in left:
            print(f"could not remove {what}", file=sys.stderr)
    _state_file(directory).unlink()
    return 1 if left else 0


def status(directory: Path) -> int:
    """Print what runs; exit 0 when everything recorded runs (and ``up`` finished), 1 otherwise."""
    state = _read_state(directory)
    if state is None:
        print(f"down (no state in {directory})")
        return 1
    if state.get("starting"):
        starter = _starter(state)
        print(
            f"starting: `goq-dev up` (pid {starter}) is at work"
            if starter is not None
            else "interrupted: `goq-dev up` was stopped while starting; `goq-dev down` stops what it started"
        )
    running = {int(str(s["pid"])) for s in _running(state)}
    every: list[dict[str, object]] = [*_recorded(state)]
    node = NodeRecord.load(Path(str(state["node_record"]))) if state.get("node_record") else None
    if node is not None:
        every += [{"name": d.name, "pid": d.pid, "executable": d.executable} for d in node.daemons]
        running |= {d.pid for d in node.daemons if processes.pid_runs(d.pid, d.executable)}
    for record in every:
        word = "running" if int(str(record["pid"])) in running else "STOPPED"
        log_file = f"  log {record['log']}" if record.get("log") else ""
        print(f"{record['name']:<26} pid {record['pid']!s:<8} {word}{log_file}")
    if node is not None:
        print(f"node {node.name}: address {node.node_address}, pods {node.pod_cidr}, Services {node.service_cidr}")
    return 0 if len(running) == len(every) and not state.get("starting") else 1


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
    start_parser = sub.add_parser("up", help="start MongoDB and the Kubernetes control plane (on loopback)")
    start_parser.add_argument("--no-kube", action="store_true", help="MongoDB only")
    start_parser.add_argument("--no-mongo", action="store_true", help="the control plane only")
    start_parser.add_argument("--with-goq", action="store_true", help="a real node with GoQ installed instead")
    start_parser.add_argument("--with-examples", action="store_true", help="a real node with GoQ and the shop example")
    demo_parser = sub.add_parser("demo", help="the shop example, step by step")
    demo_parser.add_argument("--quick", action="store_true", help="the short variant (CI)")
    demo_parser.add_argument("--keep", action="store_true", help="leave running what the demo started")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="say what runs")
    sub.add_parser("env", help="print shell exports for the running servers")
    sub.add_parser("build", help="build the node's binaries and GoQ's images into the cache (make setup does)")
    sub.add_parser("build-kube", help="build the control-plane binaries into the cache")
    node_parser = sub.add_parser("node", help="`node up`: a control plane with a bare node (no GoQ)")
    node_parser.add_argument("action", choices=["up", "down", "status", "build"], help="down, status, build: as above")
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
            case "build" | "node" if args.command == "build" or args.action == "build":
                return node_command.build()
            case "node" if args.action == "up":
                return node_up(directory)
            case "node" if args.action == "down":
                return down(directory)
            case "node":
                return status(directory)
            case _:
                print(kube.ensure_binaries())
                return 0
    except DevEnvError as exc:
        print(f"goq-dev: {exc}", file=sys.stderr)
        return 1
