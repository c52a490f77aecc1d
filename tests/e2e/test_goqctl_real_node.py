"""``goqctl --identity`` through a real port-forward: API server, kubelet, the pod's own 127.0.0.1.

The sidecar's application port listens only on the pod's loopback, so this is the path a user on a real
cluster takes: no pod IP, no ``kubectl exec``, only the kubeconfig.
"""

import asyncio
import json
import os
import subprocess
import sys

from .conftest import INVOICED, ShopSpace, eventually

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}
GOQCTL = [sys.executable, "-c", "import sys; from goq.cli.goqctl import main; sys.exit(main())"]


async def test_goqctl_reaches_a_sidecar_by_identity_through_the_api_servers_port_forward(space: ShopSpace) -> None:
    await space.queues(PATIENT, "billing")
    await space.pod("billing")
    await space.running("billing")
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["KUBECONFIG"] = str(space.cluster.kubeconfig)  # as a user has it: no --kubeconfig flag

    def goqctl(*args: str) -> subprocess.CompletedProcess[str]:
        command = [*GOQCTL, "-n", space.name, "--identity", "billing", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)

    stats = await asyncio.to_thread(goqctl, "stats", "-o", "json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["identity"] == f"billing.{space.name}"
    # An order sent through the tunnel to billing itself: its program invoices it.
    sent = await asyncio.to_thread(goqctl, "send", "billing", '{"order": 7}', "--transient", "-o", "json")
    assert sent.returncode == 0, sent.stderr
    after = await asyncio.to_thread(goqctl, "stats", "-o", "json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["sent"] == 1

    async def invoiced() -> bool:
        return 7 in await space.numbers("billing", INVOICED)

    assert await eventually(invoiced, 30, interval=1.0), await space.log("billing")
