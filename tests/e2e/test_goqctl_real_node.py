"""``goqctl --identity`` through a real port-forward: API server, kubelet, the pod's own 127.0.0.1 (opt-in).

The sidecar's application port listens only on the pod's loopback, so this is the path a user on a real
cluster takes. Opt-in with ``GOQ_REAL_NODE=1`` like ``test_real_node`` (whose module fixture it shares),
since the node and the sidecar image take minutes to build on a fresh machine.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from goq.devenv.node import binaries, dockerfiles
from goq.devenv.node.runtime import Containerd
from goq.webhook.container import sidecar_container, sidecar_volumes
from goq.webhook.settings import InjectionSettings

from .test_real_node import Cluster, cluster  # noqa: F401  (the module fixture: one node for this module)

pytestmark = [
    pytest.mark.skipif(os.environ.get("GOQ_REAL_NODE") != "1", reason="opt-in: GOQ_REAL_NODE=1 (see the docstring)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="a real node needs root"),
    pytest.mark.timeout(900),
]
GOQCTL = str(Path(sys.executable).with_name("goqctl"))


def test_goqctl_reaches_a_sidecar_by_identity_through_the_api_servers_port_forward(cluster: Cluster) -> None:  # noqa: F811
    archives = dockerfiles.ensure()
    containerd = Containerd(
        cluster.node.record, binaries.runtime_dir(), binaries.tool_path(cluster.node.workdir / "tools")
    )
    dockerfiles.import_into(containerd, archives)
    settings = InjectionSettings(image=dockerfiles.SIDECAR_IMAGE, image_pull_policy="Never", peer_tls=False)
    keys = {"k1": base64.b64encode(os.urandom(32)).decode(), "active": base64.b64encode(b"k1").decode()}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": settings.keys_secret}, "data": keys}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orders-0", "namespace": "default", "labels": {"goq.io/id": "orders"}},
        "spec": {
            "containers": [sidecar_container("orders", settings)],
            "volumes": sidecar_volumes(settings, "orders"),
            "terminationGracePeriodSeconds": 2,
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(secret))
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/orders-0", "--timeout=120s")

    def goqctl(*args: str) -> subprocess.CompletedProcess[str]:
        command = [GOQCTL, "--kubeconfig", str(cluster.plane.kubeconfig), "-n", "default", "--identity", "orders"]
        return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120, check=False)

    stats = goqctl("stats", "-o", "json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["identity"] == "orders.default"
    sent = goqctl("send", "orders", "through the tunnel", "--transient", "-o", "json")
    assert sent.returncode == 0, sent.stderr
    after = json.loads(goqctl("stats", "-o", "json").stdout)
    assert after["sent"] == 1
    cluster.kubectl("delete", "pod", "orders-0", "--wait=true")
