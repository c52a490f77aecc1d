"""A real node (kubelet, containerd, runc, CNI in a network namespace) runs pods, and leaves nothing behind.

The node's own tests, each on a node (and control plane) of its own: a pod served on its pod IP with logs,
exec and readiness; GoQ's sidecar image under the injected spec; two nodes at once; a stop and a killed
run that leave nothing. They need root. GoQ installed on the node, and everything it does there, is tested
on the session's ``GoQCluster`` by the other modules of ``tests/e2e`` (``test_install.py`` for the install).
"""

import base64
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from goq import names
from goq.devenv.kube import KubeControlPlane
from goq.devenv.node import RealNode, binaries, cleanup, dockerfiles, mountns, netns
from goq.devenv.node.cleanup import KERNEL_SETTINGS
from goq.devenv.node.images import BUSYBOX_IMAGE
from goq.devenv.node.record import NodeRecord
from goq.devenv.node.runtime import Containerd
from goq.devenv.processes import pid_alive
from goq.webhook.container import sidecar_container, sidecar_volumes
from goq.webhook.settings import CONTAINER_NAME, InjectionSettings

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root"),
    pytest.mark.timeout(900),
]

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", "echo hello from a real node; exec httpd -f -p 8080 -h /www"],
                "ports": [{"containerPort": 8080}],
                "readinessProbe": {
                    "httpGet": {"path": "/index.html", "port": 8080},
                    "periodSeconds": 1,
                    "failureThreshold": 1,
                },
            }
        ],
        "terminationGracePeriodSeconds": 1,
    },
}


MACHINE_PATHS = (
    "/var/lib/kubelet",
    "/var/log/pods",
    "/var/log/containers",
    "/var/lib/cni",
    "/run/containerd",
    "/run/xtables.lock",
    "/run/mount",
)
"""Machine paths the node's daemons write: in its mount namespace they are the node's own, never the machine's."""


@dataclass
class Cluster:
    node: RealNode
    plane: KubeControlPlane
    kernel_before: dict[str, str]
    paths_before: dict[str, bool]

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        env = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig)}
        result = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, env=env, check=False, timeout=120
        )
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout


def _kernel() -> dict[str, str]:
    return {name: Path("/proc/sys", name).read_text().strip() for name in KERNEL_SETTINGS}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("real-node")
    before = Cluster(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        _kernel(),
        {p: Path(p).exists() for p in MACHINE_PATHS},
    )
    node = RealNode(workdir / "node")
    node.create_network()
    plane = KubeControlPlane(workdir / "kube", node_address=node.host_address, service_cidr=node.service_cidr)
    try:
        plane.start()
        node.start(plane)
        before.node, before.plane = node, plane
        yield before
    finally:
        plane.stop()  # first: its watches on the node's daemons would otherwise hold it for 15 s
        node.stop()


def _get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the pod's address, never a proxy
    try:
        with opener.open(url, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_a_pod_serves_on_its_pod_ip_with_logs_exec_and_readiness(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(POD))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=120s")
    pod = json.loads(cluster.kubectl("get", "pod", "web", "-o", "json"))
    ip = pod["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(cluster.node.record.pod_cidr), f"pod IP {ip}"
    assert pod["spec"]["nodeName"] == cluster.node.name

    assert _get(f"http://{ip}:8080/index.html") == (200, "goq node ok\n")
    assert "hello from a real node" in cluster.kubectl("logs", "web")
    assert cluster.kubectl("exec", "web", "--", "cat", "/www/index.html") == "goq node ok\n"

    # The readiness probe really gates: without the page it probes, the pod turns NotReady.
    cluster.kubectl("exec", "web", "--", "rm", "/www/index.html")
    cluster.kubectl("wait", "--for=condition=Ready=false", "pod/web", "--timeout=60s")
    assert _get(f"http://{ip}:8080/index.html")[0] == 404


def _sidecar_pod(settings: InjectionSettings) -> dict[str, Any]:
    """A pod of the injected sidecar alone, exactly as the webhook writes it (probes, securityContext, volumes)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sidecar", "namespace": "default"},
        "spec": {
            "containers": [sidecar_container("real-node-test", settings)],
            "volumes": sidecar_volumes(settings, "real-node-test"),
            "terminationGracePeriodSeconds": 2,
        },
    }


def test_the_sidecar_image_runs_as_injected_read_only_and_non_root(cluster: Cluster) -> None:
    """GoQ's sidecar image, built from Dockerfile.sidecar, under the injected spec; transient-only (no MongoDB)."""
    archives = dockerfiles.ensure()  # cached by content: seconds unless the sources changed
    containerd = Containerd(
        cluster.node.record, binaries.runtime_dir(), binaries.tool_path(cluster.node.workdir / "tools")
    )
    dockerfiles.import_into(containerd, archives)
    # No operator here to issue the identity's certificate: the peer port in plaintext.
    settings = InjectionSettings(image=dockerfiles.SIDECAR_IMAGE, image_pull_policy="Never", peer_tls=False)
    keys = {"k1": base64.b64encode(os.urandom(32)).decode(), "active": base64.b64encode(b"k1").decode()}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": settings.keys_secret}, "data": keys}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(secret))
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(_sidecar_pod(settings)))

    ready = cluster.kubectl("wait", "--for=condition=Ready", "pod/sidecar", "--timeout=120s", check=False)
    pod = json.loads(cluster.kubectl("get", "pod", "sidecar", "-o", "json"))
    logs = cluster.kubectl("logs", "sidecar", "-c", CONTAINER_NAME, check=False)
    assert ready, f"the sidecar pod is not Ready: {json.dumps(pod['status'])}\nlogs:\n{logs}"
    assert _get(f"http://{pod['status']['podIP']}:{names.PORT_HEALTH}/readyz")[0] == 200

    exec_ = ("exec", "sidecar", "-c", CONTAINER_NAME, "--")
    assert cluster.kubectl(*exec_, "python", "-c", "import os; print(os.getuid())").strip() == str(settings.run_as_user)
    write = "import errno\ntry: open('/written', 'w')\nexcept OSError as e: print(errno.errorcode[e.errno])"
    assert cluster.kubectl(*exec_, "python", "-c", write).strip() == "EROFS", "the root filesystem is writable"
    # The key Secret (root:root, 0440) must be readable by the non-root sidecar: it signs with it. It is, because
    # the spec sets no runAsGroup/fsGroup and the runtime gives uid 65532 (not in /etc/passwd) group 0.
    read_keys = "import pathlib; print(pathlib.Path('/var/run/goq/hmac/active').read_text())"
    assert cluster.kubectl(*exec_, "python", "-c", read_keys).strip() == "k1"
    spill = "import pathlib; p = pathlib.Path('/var/run/goq/spill/x'); p.write_text('ok'); print(p.read_text())"
    assert cluster.kubectl(*exec_, "python", "-c", spill).strip() == "ok", "the spill emptyDir is not writable"


def _until(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(interval)
    return result


TICKER = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "ticker", "namespace": "default"},
    "spec": {
        "containers": [
            {
                "name": "ticker",
                "image": BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 1; done'],
            }
        ],
        "terminationGracePeriodSeconds": 1,
    },
}
KUBELET_KERNEL = {"vm/overcommit_memory": "1", "kernel/panic": "10", "kernel/panic_on_oops": "1"}
"""What the kubelet sets the machine's kernel settings to (``protectKernelDefaults: false``)."""
CONTAINER_GC_PERIOD = 60.0
"""The kubelet's container GC runs every minute; it deletes each pod log directory whose pod it does not know."""


def _ticks(cluster: Cluster) -> list[int]:
    """The ticker's lines that ``kubectl logs`` shows (it fails the test if the kubelet cannot read its log)."""
    return [int(n) for n in re.findall(r"tick (\d+)", cluster.kubectl("logs", "ticker"))]


def test_two_nodes_at_once_each_keep_their_pods_logs(cluster: Cluster, tmp_path: Path) -> None:
    """Two nodes on one machine, each with its own control plane, run side by side without meeting.

    Sharing the machine's /var/log/pods, each kubelet's container GC deleted the other node's pods' logs
    within a minute, and ``kubectl logs`` failed there. Each node's daemons now have a mount namespace of
    their own: the pod logs are in the node's work directory, and none of the node's mounts is on the host.
    """
    second = RealNode(tmp_path / "node")
    second.create_network()
    plane = KubeControlPlane(tmp_path / "kube", node_address=second.host_address, service_cidr=second.service_cidr)
    try:
        plane.start()
        second.start(plane)
        both = (cluster, Cluster(second, plane, {}, {}))
        for each in both:
            each.kubectl("apply", "-f", "-", stdin=json.dumps(TICKER))
        for each in both:
            each.kubectl("wait", "--for=condition=Ready", "pod/ticker", "--timeout=120s")
        running = time.monotonic()
        for each in both:
            uid = json.loads(each.kubectl("get", "pod", "ticker", "-o", "json"))["metadata"]["uid"]
            own = Path(each.node.workdir) / "fs" / "var" / "log" / "pods"
            assert [d.name for d in own.iterdir() if d.name.endswith(uid)], f"no log directory of {uid} in {own}"
            on_host = os.listdir("/var/log/pods") if Path("/var/log/pods").is_dir() else []
            assert not [d for d in on_host if d.endswith(uid)], "the pod's logs are in the machine's /var/log/pods"
            assert cleanup.mounts_under([each.node.workdir]) == [], "the node's mounts are seen on the host"
        time.sleep(max(0.0, CONTAINER_GC_PERIOD + 15 - (time.monotonic() - running)))
        for each in both:
            ticks = _ticks(each)
            assert ticks[:1] == [0], f"node {each.node.name}: the log lost its start: {ticks[:5]}"
            assert max(ticks) >= CONTAINER_GC_PERIOD + 10, f"node {each.node.name}: the log stopped at {max(ticks)}"
    finally:
        plane.stop()
        left = second.stop()
    assert left == []
    record = second.record
    assert not netns.exists(record.netns)
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert record.pod_cidr not in routes
    assert record.service_cidr not in routes
    assert cleanup.mounts_under([Path(record.workdir), mountns.run_dir(record)]) == []
    assert not mountns.run_dir(record).exists()
    assert not any((h / record.cgroup).exists() for h in cleanup.CGROUP_ROOT.iterdir())
    # The first node runs on, unharmed by the second's stop: its kernel settings stay the kubelet's, and its pod logs.
    assert _kernel() == KUBELET_KERNEL
    before = max(_ticks(cluster))
    _until("the first node's pod logging on", lambda: max(_ticks(cluster)) > before, 10)
    cluster.kubectl("delete", "pod", "ticker", "--wait=false")


def test_stopping_the_node_leaves_nothing_behind(cluster: Cluster) -> None:
    """Runs after the pod test: it stops the cluster the module's fixture started (stop again is a no-op)."""
    record = NodeRecord.load(cluster.node.record_path)
    assert record.daemons, "the node recorded no daemons"
    shims = cleanup._cgroup_pids(record.cgroup)
    assert shims, "no process in the node's cgroup while it runs (containerd, its shims and containers)"

    cluster.plane.stop()
    assert cluster.node.stop() == []

    assert not netns.exists(record.netns)
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert record.pod_cidr not in routes
    assert record.service_cidr not in routes
    assert cleanup.mounts_under([Path(record.workdir), Path(f"/run/{record.name}")]) == []
    assert _kernel() == cluster.kernel_before
    assert {p: Path(p).exists() for p in MACHINE_PATHS} == cluster.paths_before
    assert not Path(f"/run/{record.name}").exists()
    assert not any((h / record.cgroup).exists() for h in cleanup.CGROUP_ROOT.iterdir())
    assert not _alive_after(shims, 10.0), "a node process outlived the stop"


def _alive_after(pids: set[int], seconds: float) -> list[int]:
    """Those of ``pids`` still alive after ``seconds`` (a killed process whose parent died is reaped by init)."""
    deadline = time.monotonic() + seconds
    while (alive := [pid for pid in pids if pid_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


KILLED_RUN = """
import os, subprocess, sys
from pathlib import Path
from goq.devenv.kube import KubeControlPlane
from goq.devenv.node import RealNode

workdir, pod = Path(sys.argv[1]), sys.argv[2]
node = RealNode(workdir / "node")
node.create_network()
plane = KubeControlPlane(workdir / "kube", node_address=node.host_address, service_cidr=node.service_cidr)
plane.start()
node.start(plane)
env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
run = dict(env=env, check=True, stdout=sys.stderr)
subprocess.run(["kubectl", "apply", "-f", "-"], input=pod, text=True, **run)
subprocess.run(["kubectl", "wait", "--for=condition=Ready", "pod/web", "--timeout=120s"], **run)
print(node.record_path, flush=True)
sys.stdin.read()
"""


def test_a_killed_run_leaves_no_node_behind(tmp_path: Path) -> None:
    kernel_before = _kernel()
    argv = [sys.executable, "-c", KILLED_RUN, str(tmp_path), json.dumps(POD)]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as run:
        try:
            assert run.stdout is not None
            record = NodeRecord.load(Path(run.stdout.readline().strip()))
            assert netns.exists(record.netns)
            running = cleanup._cgroup_pids(record.cgroup)
            # containerd, kubelet, kube-proxy, and for the pod: a shim, pause and httpd
            assert len(running) >= 6, f"the node runs only {running}"
        finally:
            run.send_signal(signal.SIGKILL)
            run.wait()
    deadline = time.monotonic() + 90
    while (left := cleanup.leftovers(record)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == [], f"the janitor left {left}"
    assert not _alive_after(running, 10.0), "a node process outlived the killed run"
    assert _kernel() == kernel_before
