"""``goq-dev demo``: the shop example on the local control plane, step by step, with real figures.

On a running stack (``goq-dev up --with-examples``): the webhook has injected the sidecars; orders
sends an order every half second and billing invoices it; billing's sidecar is killed and the pod
runner restarts it, and every order accepted before and during the outage is invoiced; an order for an
identity no pod has lands in orders' poison queue with its reason; ``kubectl get goqueues`` shows the
figures the sidecars report.
"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client as k8s

from goq import names
from goq.devenv import tables
from goq.devenv.errors import DevEnvError
from goq.devenv.podrunner.images import is_sidecar
from goq.devenv.podrunner.pods import pod_directory
from goq.devenv.progress import Progress

NAMESPACE = "shop"
INVOICED = re.compile(r"invoiced order (\d+)")
ACCEPTED = re.compile(r"order (\d+) accepted")


@dataclass
class Shop:
    """Where to find the shop's pods, their logs and their sidecars."""

    api: k8s.ApiClient
    kubeconfig: Path
    runner_dir: Path
    namespace: str = NAMESPACE

    async def pod(self, app: str) -> dict[str, Any] | None:
        """The newest live pod of ``app`` (label ``app=<app>``), as a dict."""
        listed = await k8s.CoreV1Api(self.api).list_namespaced_pod(self.namespace, label_selector=f"app={app}")
        live = [self.api.sanitize_for_serialization(p) for p in listed.items if not p.metadata.deletion_timestamp]
        live.sort(key=lambda p: p["metadata"]["creationTimestamp"])
        return live[-1] if live else None

    def log(self, pod: Mapping[str, Any], container: str = "app") -> Path:
        meta = pod["metadata"]
        return pod_directory(self.runner_dir, meta["namespace"], meta["name"], meta["uid"]) / f"{container}.log"

    def numbers(self, pod: Mapping[str, Any], pattern: re.Pattern[str]) -> set[int]:
        try:
            text = self.log(pod).read_text(errors="replace")
        except OSError:
            return set()
        return {int(m) for m in pattern.findall(text)}


def container_status(pod: Mapping[str, Any], name: str) -> dict[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status["name"] == name:
            return dict(status)
    return {}


def sidecar_pid(pod: Mapping[str, Any]) -> int | None:
    """The sidecar's process, from its ``containerID`` (``process://<pid>``)."""
    found = container_status(pod, "goq-sidecar").get("containerID", "")
    return int(found.removeprefix("process://")) if found.startswith("process://") else None


def ready(pod: Mapping[str, Any] | None) -> bool:
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def goqctl(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "import sys; from goq.cli.goqctl import main; sys.exit(main())", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


async def run(shop: Shop, progress: Progress, *, quick: bool = False) -> None:
    """The scenario; raises DevEnvError when something does not happen in time."""
    p = progress
    pods: dict[str, dict[str, Any]] = {}

    p.step("Waiting for the webhook to inject a GoQ sidecar into each pod annotated goq.io/id")

    async def injected() -> bool:
        for app in ("orders", "billing"):
            pod = await shop.pod(app)
            if pod is None:
                return False
            pods[app] = pod
        return True

    await p.wait("pods created by the Deployments", injected, 60)
    for app, pod in pods.items():
        meta = pod["metadata"]
        containers = ", ".join(c["name"] for c in pod["spec"]["containers"])
        version = (meta.get("annotations") or {}).get(names.ANNOTATION_INJECTED, "?")
        p.detail(f"pod {meta['name']}: goq.io/id={app}, containers [{containers}] (injected by GoQ {version})")
        if not any(is_sidecar(c) for c in pod["spec"]["containers"]):
            raise DevEnvError(f"pod {meta['name']} has no GoQ sidecar: the webhook did not inject it")

    p.step("Waiting for the pod runner to start the containers and for the sidecars to be ready (/readyz)")

    async def both_ready() -> bool:
        for app in ("orders", "billing"):
            pod = await shop.pod(app)
            if not ready(pod):
                return False
            assert pod is not None
            pods[app] = pod
        return True

    await p.wait("both pods Ready", both_ready, 120)
    for pod in pods.values():
        p.detail(f"{pod['metadata']['name']}: Running, Ready, pod IP {pod['status']['podIP']}")

    flowing = 5 if quick else 10
    p.step(f"Messages flowing: orders sends an order every 0.5 s to billing; waiting for {flowing} invoices")

    async def invoiced_enough() -> bool:
        return len(shop.numbers(pods["billing"], INVOICED)) >= flowing

    await p.wait(f"{flowing} orders invoiced", invoiced_enough, 60)
    lines = [line for line in shop.log(pods["billing"]).read_text(errors="replace").splitlines() if "invoiced" in line]
    p.detail(f"billing's log ({len(lines)} invoices so far) ends:")
    p.detail("\n".join(f"  {line}" for line in lines[-4:]))

    billing = pods["billing"]
    pid = sidecar_pid(billing)
    if pid is None:
        raise DevEnvError("billing's sidecar has no process id in its pod status")
    before = len(shop.numbers(pods["orders"], ACCEPTED))
    p.step(f"Killing billing's sidecar (pid {pid}, SIGKILL); orders keeps sending, its sidecar keeps retrying")
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    async def restarted() -> bool:
        pod = await shop.pod("billing")
        if pod is None or not ready(pod) or container_status(pod, "goq-sidecar").get("restartCount", 0) < 1:
            return False
        pods["billing"] = pod
        return True

    await p.wait("the pod runner restarts the sidecar and it is ready again", restarted, 90)
    outage = time.monotonic() - killed_at
    accepted = shop.numbers(pods["orders"], ACCEPTED)
    during = len(accepted) - before
    restarts = container_status(pods["billing"], "goq-sidecar")["restartCount"]
    new_pid = sidecar_pid(pods["billing"])
    p.detail(f"billing's sidecar is back after {outage:.1f} s (restart count {restarts}, new pid {new_pid})")
    p.detail(f"orders had {before} orders accepted before the kill and {during} more during the outage")

    async def all_invoiced() -> bool:
        return accepted <= shop.numbers(pods["billing"], INVOICED)

    await p.wait(f"every one of the {len(accepted)} accepted orders invoiced", all_invoiced, 90)
    p.detail(f"all {len(accepted)} persistent orders arrived, those accepted during the outage too")

    orders_sidecar = f"{pods['orders']['status']['podIP']}:{names.PORT_GRPC}"
    p.step("An undeliverable message: an order for 'shipping', an identity no pod has")
    p.detail(f"$ goqctl --sidecar {orders_sidecar} send shipping '{{\"order\": 0}}'")
    sent = await asyncio.to_thread(goqctl, "--sidecar", orders_sidecar, "send", "shipping", '{"order": 0}')
    p.detail(sent.stdout.strip() or sent.stderr.strip())
    if sent.returncode != 0:
        raise DevEnvError(f"goqctl send failed: {sent.stderr.strip()}")

    async def poisoned() -> bool:
        listed = await asyncio.to_thread(goqctl, "--sidecar", orders_sidecar, "poison", "list")
        return "shipping" in listed.stdout

    await p.wait("orders' sidecar retries per RetryPolicy shop (8 attempts), then poisons it", poisoned, 90)
    p.detail(f"$ goqctl --sidecar {orders_sidecar} poison list")
    listed = await asyncio.to_thread(goqctl, "--sidecar", orders_sidecar, "poison", "list")
    p.detail(listed.stdout.rstrip())

    p.step(f"kubectl get goqueues -n {shop.namespace} (figures written by the sidecars' heartbeats)")

    async def reported() -> bool:
        found = await k8s.CustomObjectsApi(shop.api).get_namespaced_custom_object(
            names.GROUP, names.VERSION, shop.namespace, names.GOQUEUE_PLURAL, "orders"
        )
        return int((found.get("status") or {}).get("poisoned") or 0) >= 1

    await p.wait("the poisoned message in orders' next heartbeat", reported, 60)
    table = tables.kubectl_table(shop.kubeconfig, shop.namespace)
    if table is None:
        table = await tables.goqueues_table(shop.api, shop.namespace)
        p.detail("(kubectl is not installed: the same columns, read through the API)")
    p.detail(f"$ kubectl get goqueues -n {shop.namespace}")
    p.detail(table)
