"""A real node (kubelet, containerd, runc, CNI in a network namespace) runs pods, and leaves nothing behind.

Opt-in with ``GOQ_REAL_NODE=1``; not part of the default suite yet, for two reasons: building the node's
binaries costs about 4 minutes (more on a busy machine) on a fresh machine, which CI's budget must first
make room for, and the pod runner that ``make demo`` and the other e2e tests use is retired only in the
next step of issue 18, when this node replaces it everywhere at once. The sidecar's test builds GoQ's
images from the Dockerfiles first when their inputs changed (about 2 minutes from scratch, 1 with the base).
"""

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from goq import names
from goq.devenv.kube import KubeControlPlane
from goq.devenv.node import RealNode, binaries, cleanup, dockerfiles, netns
from goq.devenv.node.images import BUSYBOX_IMAGE
from goq.devenv.node.node import KERNEL_SETTINGS, SYSTEM_PATHS
from goq.devenv.node.record import NodeRecord
from goq.devenv.node.runtime import Containerd
from goq.devenv.processes import pid_alive
from goq.webhook.container import sidecar_container, sidecar_volumes
from goq.webhook.settings import CONTAINER_NAME, InjectionSettings

pytestmark = [
    pytest.mark.skipif(os.environ.get("GOQ_REAL_NODE") != "1", reason="opt-in: GOQ_REAL_NODE=1 (see the docstring)"),
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
        {p: Path(p).exists() for p in SYSTEM_PATHS},
    )
    node = RealNode(workdir / "node")
    node.create_network()
    plane = KubeControlPlane(workdir / "kube", node_address=node.host_address)
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
    assert ip.startswith("198.18.1."), f"pod IP {ip} is not from the node's pod CIDR"
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


def test_stopping_the_node_leaves_nothing_behind(cluster: Cluster) -> None:
    """Runs after the pod test: it stops the cluster the module's fixture started (stop again is a no-op)."""
    record = NodeRecord.load(cluster.node.record_path)
    assert record.daemons, "the node recorded no daemons"
    shims = cleanup._cgroup_pids(record.cgroup)
    assert shims, "no process in the node's cgroup while it runs (containerd, its shims and containers)"

    cluster.plane.stop()
    assert cluster.node.stop() == []

    assert not netns.exists(record.netns)
    assert record.pod_cidr not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert cleanup.mounts_under([Path(record.workdir), Path(f"/run/{record.name}")]) == []
    assert _kernel() == cluster.kernel_before
    assert {p: Path(p).exists() for p in SYSTEM_PATHS} == cluster.paths_before
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
plane = KubeControlPlane(workdir / "kube", node_address=node.host_address)
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
