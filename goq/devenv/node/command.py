"""``goq-dev node build|up|down|status``: a control plane with one real node, outliving the command.

``build`` also builds GoQ's images and the shop example's from their Dockerfiles (``dockerfiles``; cached
by content), and ``up`` imports them into the node's containerd. The node answers cluster DNS itself
(``cluster_dns``); install GoQ on it with ``kubectl apply -k manifests/`` (docs/development.md).

``up`` starts the plane (serving the node) and the node detached and records them in ``<dir>/node``;
``down`` stops the recorded daemons by PID and undoes everything the node changed on the machine, from
its record. It is separate from ``goq-dev up`` (which keeps the pod runner) until the node replaces it.
"""

import json
import shutil
import sys
import time
from pathlib import Path

from goq.devenv import processes
from goq.devenv.errors import DevEnvError
from goq.devenv.kube import KubeControlPlane
from goq.devenv.node import binaries, cleanup, dockerfiles
from goq.devenv.node.node import RealNode
from goq.devenv.node.record import NodeRecord
from goq.devenv.node.runtime import Containerd


def _state(directory: Path) -> Path:
    return directory / "node" / "state.json"


def build() -> int:
    """Build (once) what the node needs and GoQ's images; print the binaries' directory and the images."""
    print(binaries.ensure())
    for image, archive in dockerfiles.ensure(dockerfiles.ALL_BUILDS).items():
        print(f"{image} {archive}")
    return 0


def up(directory: Path) -> int:
    """Start a control plane and a node, detached; print how to use them."""
    workdir = directory / "node"
    if _state(directory).exists():
        raise DevEnvError(f"a node is up already (state in {workdir}); run `goq-dev node down` first")
    if workdir.exists():
        shutil.rmtree(workdir)
    started = time.monotonic()
    binaries.ensure()
    built = time.monotonic()
    archives = dockerfiles.ensure(dockerfiles.ALL_BUILDS)
    timings = {"GoQ's images": time.monotonic() - built}
    node = RealNode(workdir, detached=True)
    node.create_network()
    plane = KubeControlPlane(workdir / "kube", node_address=node.host_address, service_cidr=node.service_cidr)
    try:
        timings |= plane.start(detached=True)
        timings |= node.start(plane)
        imported = time.monotonic()
        containerd = Containerd(node.record, binaries.runtime_dir(), binaries.tool_path(workdir / "tools"))
        dockerfiles.import_into(containerd, archives)
        timings["importing GoQ's images"] = time.monotonic() - imported
    except BaseException:
        node.stop()
        plane.stop()
        raise
    servers = [{"name": s.name, "pid": s.pid, "executable": s.executable} for s in plane.servers]
    _state(directory).write_text(
        json.dumps({"servers": servers, "record": str(node.record_path), "kubeconfig": str(plane.kubeconfig)})
    )
    print(f"# node {node.name} is Ready ({time.monotonic() - started:.0f} s); pods get {node.record.pod_cidr}")
    print(f"# Services {node.service_cidr}; cluster DNS at {node.dns_address}")
    print("# " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()))
    print(f"export KUBECONFIG={plane.kubeconfig}")
    names = ", ".join(["goq.local/busybox:1", "goq.local/pause:3.4", *archives])
    print(f"# images without a registry: {names} (imagePullPolicy: Never)")
    print("# stop it, undoing everything it changed: goq-dev node down")
    return 0


def down(directory: Path) -> int:
    """Undo the node from its record and stop the control plane's recorded servers."""
    path = _state(directory)
    if not path.exists():
        print(f"no node is up (no state in {path.parent})")
        return 0
    state = json.loads(path.read_text())
    for record in reversed(state["servers"]):  # the plane first: its watches on the node would hold it
        if processes.pid_runs(record["pid"], record["executable"]):
            print(f"stopping {record['name']} (pid {record['pid']})")
            processes.ServerProcess(record["name"], record["pid"], Path("/dev/null"), record["executable"]).stop()
    print("stopping the node and undoing what it changed")
    left = cleanup.teardown(Path(state["record"]))
    path.unlink()
    for what in left:
        print(f"could not remove {what}", file=sys.stderr)
    return 1 if left else 0


def status(directory: Path) -> int:
    """Say whether the node and its control plane run; exit 0 when all of it does."""
    path = _state(directory)
    if not path.exists():
        print(f"down (no state in {path.parent})")
        return 1
    state = json.loads(path.read_text())
    record = NodeRecord.load(Path(state["record"]))
    all_run = True
    for daemon in [
        *state["servers"],
        *({"name": d.name, "pid": d.pid, "executable": d.executable} for d in record.daemons),
    ]:
        runs = processes.pid_runs(daemon["pid"], daemon["executable"])
        all_run &= runs
        print(f"{daemon['name']:<26} pid {daemon['pid']:<8} {'running' if runs else 'STOPPED'}")
    print(f"node {record.name}: address {record.node_address}, pods {record.pod_cidr}, API at {record.host_address}")
    return 0 if all_run else 1


def main(action: str, directory: Path) -> int:
    """Dispatch ``goq-dev node <action>``."""
    match action:
        case "build":
            return build()
        case "up":
            return up(directory)
        case "down":
            return down(directory)
        case _:
            return status(directory)
