"""The README's main command, ``make demo`` (``goq-dev demo``), in its short variant: it runs the whole
story on a fresh local cluster of its own, and what it prints is what happened."""

import re
import subprocess
import sys
from pathlib import Path

from goq.devenv.processes import pid_alive

GOQ_DEV = [sys.executable, "-c", "import sys; from goq.devenv.cli import main; sys.exit(main())"]


def test_the_demo_shows_injection_delivery_through_a_sidecar_restart_poison_and_the_goqueue_figures(
    tmp_path: Path,
) -> None:
    state = tmp_path / "demo"
    try:
        done = subprocess.run(
            [*GOQ_DEV, "--dir", str(state), "demo", "--quick"], capture_output=True, text=True, timeout=400
        )
    finally:
        subprocess.run([*GOQ_DEV, "--dir", str(state), "down"], capture_output=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, f"{out}\n{done.stderr}"
    steps = re.findall(r"^==> \[(\d+)\] (.*)$", out, re.MULTILINE)
    assert [int(n) for n, _ in steps] == list(range(1, len(steps) + 1))
    assert len(steps) >= 12
    assert re.search(r"pod orders-\S+: goq\.io/id=orders, containers \[app, goq-sidecar\]", out)
    assert re.search(r"pod billing-\S+: goq\.io/id=billing, containers \[app, goq-sidecar\]", out)
    assert re.search(r"billing: invoiced order \d+ from orders\.shop \(attempt 1\)", out)
    assert re.search(r"billing's sidecar is back after [\d.]+ s \(restart count 1, new pid \d+\)", out)
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
    assert {name for name, _ in stopped} >= {"goq-pod-runner", "goq-operator", "kube-apiserver", "etcd", "mongod"}
    assert not [pid for _, pid in stopped if pid_alive(int(pid))]
