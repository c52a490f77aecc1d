"""The node loop: bind pending pods, run the node's pods, report their status, finish their deletion.

Level-triggered, like a kubelet's sync loop: every ``interval`` it lists the cluster's pods and Services
and brings each pod of this node one step closer to its spec. The DNS responder answers from what this
loop last saw: the ready pods (the runner's own probes) that a Service of the name selects.
"""

import asyncio
import base64
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.devenv.podrunner import volumes
from goq.devenv.podrunner.addresses import PodAddresses
from goq.devenv.podrunner.pods import NodeContext, PodWorker, pod_directory

log = logging.getLogger("goq.devenv.podrunner")

GRACE_LIMIT = 15.0
"""Seconds a deleted pod's containers get after SIGTERM, at most (their spec may say less)."""


class ApiReader:
    """Secrets and ConfigMaps through the API: what ``volumes.ObjectReader`` needs."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.core = k8s.CoreV1Api(api)

    async def secret(self, namespace: str, name: str) -> dict[str, bytes]:
        try:
            found = await self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise volumes.MissingObjectError(f"Secret {namespace}/{name} not found") from None
            raise
        return volumes.decode_secret(found.data)

    async def config_map(self, namespace: str, name: str) -> dict[str, str]:
        try:
            found = await self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise volumes.MissingObjectError(f"ConfigMap {namespace}/{name} not found") from None
            raise
        return dict(found.data or {})


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass
class PodRunner:
    """Plays the kubelet of node ``node`` for the API server ``api`` talks to."""

    api: k8s.ApiClient
    node_name: str
    directory: Path
    context: NodeContext
    cluster_domain: str = "cluster.local"
    interval: float = 0.5
    addresses: PodAddresses = field(default_factory=PodAddresses)
    workers: dict[str, PodWorker] = field(default_factory=dict)
    services: list[dict[str, Any]] = field(default_factory=list)
    _kubeconfigs: dict[str, str] = field(default_factory=dict)
    _reported: dict[str, dict[str, Any]] = field(default_factory=dict)
    _finishing: set[str] = field(default_factory=set)
    _terminations: dict[str, "asyncio.Task[None]"] = field(default_factory=dict)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    async def register_node(self) -> None:
        """Create (or take over) the Node object and mark it Ready."""
        meta = {"name": self.node_name, "labels": {"goq.io/local": "true"}}
        body: Any = {"apiVersion": "v1", "kind": "Node", "metadata": meta}
        try:
            await self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
        status = {
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "pod runner"}],
                "addresses": [{"type": "InternalIP", "address": self.context.host_ip}],
                "nodeInfo": {"kubeletVersion": "goq-podrunner", "operatingSystem": "linux", "architecture": "amd64"},
            }
        }
        await self.core.patch_node_status(self.node_name, status)

    def lookup(self, name: str) -> list[str] | None:
        """DNS: ``<service>.<namespace>.svc.<domain>`` -> ready pods' addresses; ``None``: no such name."""
        suffix = f".svc.{self.cluster_domain}"
        if not name.endswith(suffix):
            return None
        parts = name.removesuffix(suffix).split(".")
        if len(parts) != 2:
            return None
        service_name, namespace = parts
        for service in self.services:
            meta = service["metadata"]
            if meta["name"] == service_name and meta["namespace"] == namespace:
                selector = (service.get("spec") or {}).get("selector") or {}
                return [
                    w.address
                    for w in list(self.workers.values())
                    if w.ready
                    and not w.terminating
                    and w.pod["metadata"]["namespace"] == namespace
                    and _selects(selector, w.pod["metadata"].get("labels") or {})
                ]
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Sync until ``stop`` is set; then stop every container (the pods stay, as on a lost node)."""
        reader = ApiReader(self.api)
        try:
            while not stop.is_set():
                try:
                    await self.sync_once(reader)
                except (ApiException, OSError) as exc:
                    log.warning("sync failed (retrying): %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            for task in self._terminations.values():
                task.cancel()
            await asyncio.gather(*self._terminations.values(), return_exceptions=True)
            await asyncio.gather(*(w.stop(2.0) for w in self.workers.values()))

    async def sync_once(self, reader: ApiReader) -> None:
        pods = [self.api.sanitize_for_serialization(p) for p in (await self.core.list_pod_for_all_namespaces()).items]
        services = await self.core.list_service_for_all_namespaces()
        self.services = [self.api.sanitize_for_serialization(s) for s in services.items]
        seen: set[str] = set()
        for pod in pods:
            spec, meta = pod["spec"], pod["metadata"]
            if not spec.get("nodeName"):
                await self._bind(pod)
                continue
            if spec["nodeName"] != self.node_name:
                continue
            uid = meta["uid"]
            seen.add(uid)
            worker = self.workers.get(uid)
            if worker is None:
                if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or uid in self._finishing:
                    continue
                worker = self._new_worker(pod)
            worker.pod = pod
        for uid in [u for u in self.workers if u not in seen and u not in self._terminations]:
            log.info("%s: gone from the API; stopping its containers", self.workers[uid].key)
            await self._forget(uid, grace=0.0)
        self._finishing &= seen
        syncing = [(u, w) for u, w in self.workers.items() if u not in self._terminations]
        results = await asyncio.gather(*(self._sync_pod(u, w, reader) for u, w in syncing), return_exceptions=True)
        for (_, worker), result in zip(syncing, results, strict=True):
            if isinstance(result, Exception):  # one odd pod must not stop the node's other pods
                log.warning("%s: sync failed (retrying): %r", worker.key, result)

    def _new_worker(self, pod: dict[str, Any]) -> PodWorker:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        address = self.addresses.allocate(key)
        directory = pod_directory(self.directory, meta["namespace"], meta["name"], meta["uid"])
        worker = PodWorker(pod, address, directory, self.context)
        self.workers[meta["uid"]] = worker
        log.info("%s: runs at %s (logs in %s)", key, address, directory)
        return worker

    async def _bind(self, pod: Mapping[str, Any]) -> None:
        meta = pod["metadata"]
        if (pod["spec"].get("schedulerName") or "default-scheduler") != "default-scheduler":
            return
        body: Any = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            # The client cannot read the answer back as a Binding (a known quirk): take it raw.
            await self.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], body, _preload_content=False)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    async def _sync_pod(self, uid: str, worker: PodWorker, reader: ApiReader) -> None:
        meta = worker.pod["metadata"]
        if meta.get("deletionTimestamp"):
            worker.terminating = True
            task = asyncio.get_running_loop().create_task(self._terminate(uid, worker), name=f"terminate {worker.key}")
            self._terminations[uid] = task
            return
        await worker.sync(reader, await self._kubeconfig(worker.pod))
        status = worker.status()
        if self._reported.get(uid) != status:
            try:
                await self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})
            except ApiException as exc:
                if exc.status != 404:
                    raise
                return
            self._reported[uid] = status

    async def _terminate(self, uid: str, worker: PodWorker) -> None:
        """A deleted pod: stop its containers within its grace period, then remove it for good (as a kubelet)."""
        meta = worker.pod["metadata"]
        grace = min(float(meta.get("deletionGracePeriodSeconds") or 0), GRACE_LIMIT)
        log.info("%s: deleted; stopping its containers (grace %.0f s)", worker.key, grace)
        try:
            await self._forget(uid, grace=grace)
            self._finishing.add(uid)
            await self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=k8s.V1DeleteOptions(grace_period_seconds=0, preconditions=k8s.V1Preconditions(uid=uid)),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("%s: could not finish its deletion: %s", worker.key, exc)
        finally:
            self._terminations.pop(uid, None)

    async def _forget(self, uid: str, grace: float) -> None:
        worker = self.workers.pop(uid)
        self._reported.pop(uid, None)
        await worker.stop(grace)
        self.addresses.release(worker.address)

    async def _kubeconfig(self, pod: Mapping[str, Any]) -> str | None:
        """A kubeconfig with the pod's ServiceAccount token, as the pod's in-cluster config would give."""
        namespace = pod["metadata"]["namespace"]
        account = pod["spec"].get("serviceAccountName") or "default"
        key = f"{namespace}/{account}"
        if key in self._kubeconfigs:
            return self._kubeconfigs[key]
        try:
            found = await self.core.read_namespaced_service_account(account, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        for ref in found.secrets or []:
            secret = await self.core.read_namespaced_secret(ref.name, namespace)
            if secret.type == "kubernetes.io/service-account-token" and (secret.data or {}).get("token"):
                path = self.directory / "accounts" / f"{namespace}_{account}.kubeconfig"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(yaml.safe_dump(self._config(account, secret.data)))
                path.chmod(0o600)
                self._kubeconfigs[key] = str(path)
                return str(path)
        return None

    def _config(self, account: str, data: Mapping[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {"server": self.api.configuration.host, "certificate-authority-data": data["ca.crt"]},
                }
            ],
            "users": [{"name": account, "user": {"token": base64.b64decode(data["token"]).decode()}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": account}}],
            "current-context": "local",
        }
