"""The README's main command, ``make demo`` (``goq-dev demo``), in its short variant: it runs the whole
story on a real node of its own (a ``GoQCluster``), what it prints is what happened, and it leaves
nothing behind."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from goq.devenv.processes import pid_alive

GOQ_DEV = [sys.executable, "-c", "import sys; from goq.devenv.cli import main; sys.exit(main())"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the demo runs a real node: run as root")
DEMO_TIMEOUT = 900
"""Seconds for a whole demo: ~3 minutes with GoQ's images cached, ~6 more when GoQ's sources changed since
(the four images rebuild) on a busy machine."""

STEPS = [
    "Building what the node runs",
    "Starting Kubernetes v1.20.2 with a real node",
    "GoQ is installed as users install it",
    "The shop example",
    "Waiting for the webhook to inject a GoQ sidecar",
    "Waiting for the kubelet to run the containers",
    "Messages flowing",
    "Killing billing's sidecar container",
    "An undeliverable message",
    "kubectl get goqueues -n shop",
    "Stopping everything the demo started",
]


@pytest.fixture
def state() -> Iterator[Path]:
    """A short state directory: the kubelet's unix sockets live under it (108 bytes at most), so not tmp_path."""
    directory = Path(tempfile.mkdtemp(prefix="goq-demo-", dir="/tmp"))
    yield directory / "dev"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.timeout(DEMO_TIMEOUT + 240)  # and `goq-dev down` after it
def test_the_demo_shows_injection_delivery_through_a_sidecar_restart_poison_and_the_goqueue_figures(
    state: Path,
) -> None:
    try:
        done = subprocess.run(
            [*GOQ_DEV, "--dir", str(state), "demo", "--quick"], capture_output=True, text=True, timeout=DEMO_TIMEOUT
        )
    finally:
        subprocess.run([*GOQ_DEV, "--dir", str(state), "down"], capture_output=True, timeout=180)
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr[-4000:]}"  # the end: a daemon's dump may precede it
    steps = re.findall(r"^==> \[(\d+)\] (.*)$", out, re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, len(steps) + 1))
    assert len(steps) == len(STEPS), out
    for (_, title), expected in zip(steps, STEPS, strict=True):
        assert title.startswith(expected), out

    node = re.search(r"node (goq-node-\d+) at ", out)
    assert node, out
    assert re.search(r"goq-operator-\S+\s+1/1\s+Running", out), "the operator does not run as a pod"
    assert re.search(r"pod orders-\S+: goq\.io/id=orders, containers \[app, goq-sidecar\]", out)
    assert re.search(r"pod billing-\S+: goq\.io/id=billing, containers \[app, goq-sidecar\]", out)
    assert re.search(rf"billing-\S+: Running on node {node[1]}, Ready, pod IP 198\.18\.", out)
    assert "user 65532, read-only root filesystem" in out
    assert re.search(r"\$ kubectl -n shop logs billing-\S+ -c app --tail=4\n(.*\n)*.*billing: invoiced order \d+", out)

    killed = re.search(r"Killing billing's sidecar container: its process, host pid (\d+) \(SIGKILL\)", out)
    assert killed, out
    assert not pid_alive(int(killed[1]))
    assert "the kubelet saw the container end (exit code 137" in out
    back = re.search(r"billing's sidecar is back after [\d.]+ s \(restart count 1, new pid (\d+)\)", out)
    assert back, out
    assert back[1] != killed[1]
    accepted = re.search(r"all (\d+) persistent orders arrived", out)
    assert accepted, out
    assert int(accepted[1]) >= 5
    assert re.search(r"outbound\s+shipping\.shop\s+max-attempts\s+8", out)

    table = out.split("$ kubectl get goqueues -n shop\n", 1)[1].splitlines()
    assert table[0].split() == ["NAME", "READY", "PODS", "SENDQ", "RECVQ", "DELIVERED", "POISONED", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:3]}
    assert rows["billing"][1:3] == ["1/1", "1"]
    assert rows["orders"][1:3] == ["1/1", "1"]
    assert int(rows["orders"][5]) >= int(accepted[1])
    assert int(rows["orders"][6]) >= 1

    stopped = re.findall(r"^stopping (\S+) \(pid (\d+)\)$", out, re.MULTILINE)
    assert {name for name, _ in stopped} >= {"kube-apiserver", "etcd", "mongod", "containerd", "kubelet"}
    assert not [pid for _, pid in stopped if pid_alive(int(pid))]
    assert not (state / "state.json").exists()
    assert not Path("/run/netns", node[1]).exists(), f"the node's network namespace {node[1]} was left behind"
    assert not Path("/run", node[1]).exists(), f"/run/{node[1]} was left behind"


def test_a_state_directory_too_long_for_the_kubelets_sockets_is_refused_before_anything_starts(tmp_path: Path) -> None:
    state = tmp_path / ("x" * 40) / "dev"
    done = subprocess.run([*GOQ_DEV, "--dir", str(state), "demo"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "is too long for a node" in done.stderr
    assert "use --dir (or GOQ_DEV_DIR) with at most 60" in done.stderr
    assert not state.exists()
