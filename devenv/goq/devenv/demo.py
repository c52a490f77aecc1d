"""``goq-dev demo``: the shop example on a real node, step by step, with real figures.

On a running cluster (``goq-dev up --with-examples``: a ``GoQCluster``): the webhook has injected the
sidecars; the kubelet runs them as containers and gates readiness on their probes; orders sends an
order every half second and billing invoices it (read with ``kubectl logs``); billing's sidecar
container process is killed (its host PID from the node's containerd) and the kubelet restarts it, and
every order accepted before and during the outage is invoiced; an order for an identity no pod has
lands in orders' poison queue with its reason (``goqctl --identity``, through the API server);
``kubectl get goqueues`` shows the figures the sidecars report.
"""

import asyncio
import os
import signal
import time
from typing import Any

from kubernetes_asyncio import client as k8s

from goq import names
from goq.devenv.errors import DevEnvError
from goq.devenv.progress import Progress
from goq.devenv.shop import ACCEPTED, INVOICED, ClusterShop, container_status, goqctl, kubectl, ready

__all__ = ["ACCEPTED", "INVOICED", "container_status", "goqctl", "ready", "run"]

SIDECAR = names.SIDECAR_CONTAINER


async def run(shop: ClusterShop, progress: Progress, *, quick: bool = False) -> None:
    """The scenario; raises DevEnvError when something does not happen in time."""
    pods = await _injected(shop, progress)
    await _running(shop, progress, pods)
    await _flowing(shop, progress, pods, 5 if quick else 10)
    await _sidecar_killed(shop, progress, pods)
    await _poisoned(shop, progress)
    await _goqueues(shop, progress)


async def _injected(shop: ClusterShop, p: Progress) -> dict[str, dict[str, Any]]:
    p.step("Waiting for the webhook to inject a GoQ sidecar into each pod annotated goq.io/id")
    pods: dict[str, dict[str, Any]] = {}

    async def created() -> bool:
        for app in ("orders", "billing"):
            pod = await shop.pod(app)
            if pod is None:
                return False
            pods[app] = pod
        return True

    await p.wait("pods created by the Deployments", created, 60)
    for app, pod in pods.items():
        meta = pod["metadata"]
        containers = [c["name"] for c in pod["spec"]["containers"]]
        version = (meta.get("annotations") or {}).get(names.ANNOTATION_INJECTED, "?")
        p.detail(
            f"pod {meta['name']}: goq.io/id={app}, containers [{', '.join(containers)}] (injected by GoQ {version})"
        )
        if SIDECAR not in containers:
            raise DevEnvError(f"pod {meta['name']} has no GoQ sidecar: the webhook did not inject it")
    return pods


async def _running(shop: ClusterShop, p: Progress, pods: dict[str, dict[str, Any]]) -> None:
    p.step("Waiting for the kubelet to run the containers (containerd, runc) and for the sidecars' probes (/readyz)")

    async def both_ready() -> bool:
        for app in ("orders", "billing"):
            pod = await shop.pod(app)
            if not ready(pod):
                return False
            assert pod is not None
            pods[app] = pod
        return True

    await p.wait("both pods Ready", both_ready, 180)
    for pod in pods.values():
        node, ip = pod["spec"].get("nodeName"), pod["status"]["podIP"]
        p.detail(f"{pod['metadata']['name']}: Running on node {node}, Ready, pod IP {ip}")
    sidecar = next(c for c in pods["billing"]["spec"]["containers"] if c["name"] == SIDECAR)
    security = sidecar.get("securityContext") or {}
    root = "read-only" if security.get("readOnlyRootFilesystem") else "writable"
    p.detail(
        f"each sidecar: image {sidecar['image']}, user {security.get('runAsUser', '?')}, {root} root filesystem, "
        f"ports {', '.join(str(port['containerPort']) for port in sidecar.get('ports') or [])}"
    )


async def _flowing(shop: ClusterShop, p: Progress, pods: dict[str, dict[str, Any]], flowing: int) -> None:
    p.step(f"Messages flowing: orders sends an order every 0.5 s to billing; waiting for {flowing} invoices")

    async def invoiced_enough() -> bool:
        return len(await shop.numbers(pods["billing"], INVOICED)) >= flowing

    await p.wait(f"{flowing} orders invoiced", invoiced_enough, 90)
    billing = pods["billing"]["metadata"]["name"]
    command = ("-n", shop.namespace, "logs", billing, "-c", "app", "--tail=4")
    p.detail(f"$ kubectl {' '.join(command)}")
    p.detail(
        "\n".join(f"  {line}" for line in (await asyncio.to_thread(kubectl, shop.kubeconfig, *command)).splitlines())
    )


async def _sidecar_killed(shop: ClusterShop, p: Progress, pods: dict[str, dict[str, Any]]) -> None:
    billing = pods["billing"]
    container_id = container_status(billing, SIDECAR).get("containerID", "")
    pid = await asyncio.to_thread(shop.container_pid, billing, SIDECAR)
    if pid is None:
        raise DevEnvError(f"billing's sidecar container {container_id or '(none)'} has no running task in containerd")
    before = len(await shop.numbers(pods["orders"], ACCEPTED))
    restarts = int(container_status(billing, SIDECAR).get("restartCount", 0))  # a second demo on `make up`
    p.step(
        f"Killing billing's sidecar container: its process, host pid {pid} (SIGKILL); orders keeps sending, "
        "its sidecar keeps retrying"
    )
    p.detail(f"{container_id[:25]}...: containerd's task for it runs as pid {pid} on this machine")
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    async def restarted() -> bool:
        pod = await shop.pod("billing")
        if pod is None or not ready(pod) or container_status(pod, SIDECAR).get("restartCount", 0) <= restarts:
            return False
        pods["billing"] = pod
        return True

    await p.wait("the kubelet restarts the container and its readiness probe passes again", restarted, 120)
    outage = time.monotonic() - killed_at
    accepted = await shop.numbers(pods["orders"], ACCEPTED)
    status = container_status(pods["billing"], SIDECAR)
    ended = (status.get("lastState") or {}).get("terminated") or {}
    new_pid = await asyncio.to_thread(shop.container_pid, pods["billing"], SIDECAR)
    p.detail(
        f"the kubelet saw the container end (exit code {ended.get('exitCode', '?')}, {ended.get('reason', '?')}) "
        "and started it again"
    )
    p.detail(
        f"billing's sidecar is back after {outage:.1f} s (restart count {status['restartCount']}, new pid {new_pid})"
    )
    p.detail(f"orders had {before} orders accepted before the kill and {len(accepted) - before} more during the outage")

    await _all_invoiced(shop, p, pods, accepted)


async def _all_invoiced(shop: ClusterShop, p: Progress, pods: dict[str, dict[str, Any]], accepted: set[int]) -> None:
    """Wait until every accepted order is invoiced. An outage longer than RetryPolicy shop's 8 attempts (about
    10 s: a second kill of the same container, which the kubelet restarts after a back-off) puts the orders
    sent meanwhile into orders' poison queue: then the demo redrives them, as an operator would."""
    orders = ("-n", shop.namespace, "--identity", "orders")
    missing: set[int] = set()
    poisoned = 0

    async def settled() -> bool:
        nonlocal missing, poisoned
        missing = accepted - await shop.numbers(pods["billing"], INVOICED)
        if missing:
            listed = await asyncio.to_thread(
                goqctl, *orders, "poison", "list", "--peer", "billing", kubeconfig=shop.kubeconfig
            )
            poisoned = sum(" billing.shop " in f" {line} " for line in listed.stdout.splitlines())
        return not missing or 0 < len(missing) <= poisoned

    await p.wait(f"every one of the {len(accepted)} accepted orders invoiced (or poisoned)", settled, 120, 1.0)
    if missing:
        p.detail(
            f"{poisoned} orders ran out of RetryPolicy shop's 8 attempts during the outage: they are in orders' "
            "poison queue (max-attempts), stored, not lost; handing them back for delivery:"
        )
        redrive = (*orders, "poison", "redrive", "--all", "--peer", "billing")
        p.detail(f"$ goqctl {' '.join(redrive)}")
        done = await asyncio.to_thread(goqctl, *redrive, kubeconfig=shop.kubeconfig)
        if done.returncode != 0:
            raise DevEnvError(f"goqctl poison redrive failed: {done.stderr.strip()}")
        lines = done.stdout.splitlines()
        p.detail("\n".join(lines[:3] + ([f"... {len(lines)} in all"] if len(lines) > 3 else [])))

        async def all_invoiced() -> bool:
            return accepted <= await shop.numbers(pods["billing"], INVOICED)

        await p.wait(f"the {len(missing)} redriven orders invoiced", all_invoiced, 120)
    p.detail(f"all {len(accepted)} persistent orders arrived, those accepted during the outage too")


async def _poisoned(shop: ClusterShop, p: Progress) -> None:
    orders = ("-n", shop.namespace, "--identity", "orders")
    p.step("An undeliverable message: an order for 'shipping', an identity no pod has")
    p.detail("(goqctl reaches orders' sidecar by its identity, through the API server: a port-forward to its pod)")
    p.detail(f"$ goqctl {' '.join(orders)} send shipping '{{\"order\": 0}}'")
    sent = await asyncio.to_thread(goqctl, *orders, "send", "shipping", '{"order": 0}', kubeconfig=shop.kubeconfig)
    p.detail(sent.stdout.strip() or sent.stderr.strip())
    if sent.returncode != 0:
        raise DevEnvError(f"goqctl send failed: {sent.stderr.strip()}")
    message_id = sent.stdout.split()[0]
    listed = sent

    async def poisoned() -> bool:
        nonlocal listed
        listed = await asyncio.to_thread(goqctl, *orders, "poison", "list", kubeconfig=shop.kubeconfig)
        return message_id in listed.stdout

    await p.wait("orders' sidecar retries per RetryPolicy shop (8 attempts), then poisons it", poisoned, 120, 1.0)
    p.detail(f"$ goqctl {' '.join(orders)} poison list")
    p.detail(listed.stdout.rstrip())


async def _goqueues(shop: ClusterShop, p: Progress) -> None:
    p.step(f"kubectl get goqueues -n {shop.namespace} (figures written by the sidecars' heartbeats)")

    async def reported() -> bool:
        found = await k8s.CustomObjectsApi(shop.api).get_namespaced_custom_object(
            names.GROUP, names.VERSION, shop.namespace, names.GOQUEUE_PLURAL, "orders"
        )
        return int((found.get("status") or {}).get("poisoned") or 0) >= 1

    await p.wait("the poisoned message in orders' next heartbeat", reported, 60)
    p.detail(f"$ kubectl get goqueues -n {shop.namespace}")
    p.detail(await asyncio.to_thread(kubectl, shop.kubeconfig, "get", "goqueues", "-n", shop.namespace))
