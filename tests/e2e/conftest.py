"""GoQ end to end on a real node: one ``GoQCluster`` for the whole session, a namespace of its own per test.

The cluster is what ``make up`` runs (``goq.devenv.node.cluster``): the control plane, a ``RealNode``
(containerd, kubelet, kube-proxy, cluster DNS in a network namespace), MongoDB as a process of the node,
GoQ's images built from its Dockerfiles, GoQ installed with ``kubectl apply -k`` (two operator replicas
with a leader Lease, the webhook reached through its Service) and the shop example's two images, which the
tests' pods run as their applications (``goq.local/goq-example-<app>:local``, ``imagePullPolicy: Never``).
Sidecars are the injected containers, restarted by the kubelet; logs come from the API's pod log endpoint.

One cluster for every module, because each start costs about 1.5 minutes; so one set of operator settings
(``OPERATOR_ENV``) for every module too. Switching them per module (``kubectl set env`` and a rollout of
both replicas, then a leader handover) would cost about as much as a start, four times a run; instead the
settings that the key rotation and certificate renewal tests need hold for all, and are set so that every
other test lives with them, as tests on a real cluster would: keys and certificates take ``PROPAGATION``
to reach every sidecar (a sweep, the dev kubelet's ~10 s Secret volume resync with jitter, the sidecar's
2 s poll), so certificates live ``CERT_LIFETIME`` and are renewed under whatever traffic a test runs.

Measured on this machine (2 cores, shared with other work, December 2026): the 14 tests of ``tests/e2e`` but
``test_demo`` and ``test_real_node`` in 574 s of wall time, of which 100 s rebuilt the shop's two images (GoQ's
sources had changed): about 8 minutes with every image cached. The cluster's start with the images cached is
~66 s (control plane 10 s, node Ready 23 s, images imported 11-22 s, GoQ installed and its operator Ready
8-10 s, MongoDB 1 s). A fresh machine adds, once (``make setup`` does it before ``make test``): the node's
kubelet, kube-proxy and kube-scheduler (about 4-5.5 minutes, ``binaries``), the Python base image (about a
minute) and GoQ's four images (measured: sidecar 72 s, operator 49 s, orders 44 s, billing 45 s); a later
run rebuilds only the images whose inputs changed (sidecar and operator ~2 minutes, the shop's ~1.5).
"""

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.cli.goqctl.forwarding import PortForward
from goq.cli.goqctl.kube import KubeSettings
from goq.devenv import applying
from goq.devenv.node import binaries, dockerfiles
from goq.devenv.node.cluster import MONGODB_SECRET, GoQCluster
from goq.devenv.node.runtime import Containerd
from goq.keyring import SECRET_NAME
from goq.webhook.settings import CONTAINER_NAME

T = TypeVar("T")

STALE_AFTER: Final = 5.0
"""The operator's GOQ_STALE_AFTER here: seconds without a heartbeat before a pod is marked stale."""
PROPAGATION: Final = 20.0
"""GOQ_KEY_PROPAGATION and GOQ_TLS_PROPAGATION: a 0.5 s sweep, the kubelet's 10 s resync (+50 % jitter), a 2 s poll."""
CERT_LIFETIME: Final = 75.0
"""GOQ_TLS_CERT_LIFETIME: over three times the propagation, as the operator requires; renewed after 50 s."""
SIDECAR_ENV: Final = {"GOQ_STATUS_INTERVAL": "1s", "GOQ_LOG_FORMAT": "text"}
OPERATOR_ENV: Final = {
    "GOQ_STALE_AFTER": f"{STALE_AFTER:g}s",
    "GOQ_SWEEP_INTERVAL": "500ms",
    "GOQ_KEY_PROPAGATION": f"{PROPAGATION:g}s",
    "GOQ_TLS_CERT_LIFETIME": f"{CERT_LIFETIME:g}s",
    "GOQ_TLS_PROPAGATION": f"{PROPAGATION:g}s",
    "GOQ_SIDECAR_ENV": ",".join(f"{k}={v}" for k, v in SIDECAR_ENV.items()),
}
CLUSTER_START_TIMEOUT: Final = 1800.0
"""The test that starts the cluster may build the node's binaries and every image first (fresh machine)."""
INVOICED: Final = re.compile(r"invoiced order (\d+)")
ACCEPTED: Final = re.compile(r"order (\d+) accepted")
GOQCTL: Final = [sys.executable, "-c", "import sys; from goq.cli.goqctl import main; sys.exit(main())"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first e2e test on the cluster pays for its start: give it the time a fresh machine's builds take."""
    for item in items:
        if "goq_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(CLUSTER_START_TIMEOUT), append=False)
            return


async def eventually(check: Callable[[], Awaitable[T]], within: float = 60.0, interval: float = 0.5) -> T:
    """Await ``check()`` until it returns something truthy; the last value after ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)


def container_status(pod: Mapping[str, Any] | None, name: str = CONTAINER_NAME) -> dict[str, Any]:
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status["name"] == name:
            return dict(status)
    return {}


def ready(pod: Mapping[str, Any] | None) -> bool:
    if (pod or {}).get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = ((pod or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="session")
def goq_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoQCluster]:
    """The session's cluster, with the shop's images imported; stopped (everything undone) at the end."""
    if os.geteuid() != 0:
        pytest.skip("the e2e tests run a real node (kubelet, containerd in a network namespace): run as root")
    cluster = GoQCluster(tmp_path_factory.mktemp("e2e-cluster"), operator_env=OPERATOR_ENV)
    try:
        timings = cluster.start()
        started = time.monotonic()
        dockerfiles.import_into(containerd(cluster), dockerfiles.ensure(dockerfiles.EXAMPLE_BUILDS))
        timings.add("shop images", started)
        print(f"\ne2e cluster: {timings}")
        yield cluster
    finally:
        left = cluster.stop()
        assert left == [], f"stopping the e2e cluster left {left}"


def containerd(cluster: GoQCluster) -> Containerd:
    """The node's containerd, for ``ctr`` (importing images, finding a container's process)."""
    return Containerd(cluster.node.record, binaries.runtime_dir(), binaries.tool_path(cluster.workdir / "tools"))


@pytest.fixture(scope="session")
async def e2e_api(goq_cluster: GoQCluster) -> AsyncIterator[k8s.ApiClient]:
    """An API client for the session's cluster, as cluster admin."""
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(goq_cluster.kubeconfig), client_configuration=configuration)
    async with k8s.ApiClient(configuration) as api:
        yield api


@dataclass
class ShopSpace:
    """A namespace of the session's cluster for one test: GoQueues, pods of the shop's programs, their logs."""

    name: str
    api: k8s.ApiClient
    cluster: GoQCluster

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    async def queues(self, retry: dict[str, Any], *identities: str) -> None:
        """RetryPolicy ``e2e`` and a GoQueue per identity using it; returns once the operator has provided
        what the identities' pods mount (key ring, certificates, MongoDB Secret), so none waits on a retry."""
        docs: list[dict[str, Any]] = [
            {"apiVersion": names.API_VERSION, "kind": "RetryPolicy", "metadata": {"name": "e2e"}, "spec": retry}
        ]
        for identity in identities:
            spec = {"retryPolicy": "e2e", "poisonQueue": {"type": "mongodb"}}
            docs.append(
                {"apiVersion": names.API_VERSION, "kind": "GoQueue", "metadata": {"name": identity}, "spec": spec}
            )
        await applying.apply_all(self.api, docs, self.name)
        await self.provided(*identities)

    async def provided(self, *identities: str) -> None:
        """Until the Secrets the injected sidecars of ``identities`` need are in the namespace."""

        async def secret(name: str) -> dict[str, str]:
            with contextlib.suppress(ApiException):
                return dict((await self.core.read_namespaced_secret(name, self.name)).data or {})
            return {}

        async def all_there() -> bool:
            certificates = await secret(names.IDENTITY_TLS_SECRET)
            return (
                bool(await secret(SECRET_NAME))
                and bool(await secret(MONGODB_SECRET))
                and all(names.tls_cert_key(i) in certificates for i in identities)
            )

        assert await eventually(all_there, 60), f"the operator did not provide namespace {self.name}'s Secrets"

    async def pod(
        self,
        app: str,
        env: dict[str, str] | None = None,
        *,
        name: str | None = None,
        identity: str | None = None,
        more: list[dict[str, Any]] | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """A bare Pod annotated ``goq.io/id: <identity or app>`` running the shop's program ``<app>`` (and ``more``)."""
        container = {
            "name": "app",
            "image": f"goq.local/goq-example-{app}:{dockerfiles.TAG}",
            "imagePullPolicy": "Never",
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        }
        identity = identity or app
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name or identity,
                "labels": {"app": identity},
                "annotations": {names.ANNOTATION_ID: identity},
            },
            "spec": {"containers": [container, *(more or [])], "terminationGracePeriodSeconds": 10, **spec},
        }
        created = await self.core.create_namespaced_pod(self.name, body)
        result: dict[str, Any] = self.api.sanitize_for_serialization(created)
        return result

    async def read(self, name: str) -> dict[str, Any] | None:
        """The pod ``name`` as a dict, or ``None`` once it is gone."""
        try:
            found = await self.core.read_namespaced_pod(name, self.name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = self.api.sanitize_for_serialization(found)
        return result

    async def newest(self, app: str) -> dict[str, Any] | None:
        """The newest live pod labelled ``app=<app>``."""
        listed = await self.core.list_namespaced_pod(self.name, label_selector=f"app={app}")
        live = [self.api.sanitize_for_serialization(p) for p in listed.items if not p.metadata.deletion_timestamp]
        live.sort(key=lambda p: p["metadata"]["creationTimestamp"])
        return live[-1] if live else None

    async def running(self, name: str, within: float = 120.0) -> dict[str, Any]:
        """The pod ``name`` once it is Ready (its sidecar's readiness probe included)."""

        async def check() -> dict[str, Any] | None:
            pod = await self.read(name)
            return pod if ready(pod) else None

        pod = await eventually(check, within)
        if pod is None:
            described = self.cluster.kubectl("-n", self.name, "describe", "pod", name, check=False)
            logs = [
                f"--- {container}{' (previous run)' if previous == 'true' else ''}:\n"
                + self.cluster.kubectl(
                    "-n", self.name, "logs", name, "-c", container, "--tail=30", f"--previous={previous}", check=False
                )
                for container in ("app", CONTAINER_NAME)
                for previous in ("false", "true")
            ]
            raise AssertionError(f"pod {name} never became Ready:\n{described}\n" + "\n".join(logs))
        return pod

    async def delete(self, name: str) -> None:
        """Delete the pod ``name`` and wait until it is gone (its containers stopped)."""
        await self.core.delete_namespaced_pod(name, self.name)

        async def gone() -> bool:
            return await self.read(name) is None

        assert await eventually(gone, 60), f"pod {name} was never deleted"

    async def log(self, pod: Mapping[str, Any] | str, container: str = "app") -> str:
        """The container's log (its current run) through the API's pod log endpoint; empty if none yet."""
        name = pod if isinstance(pod, str) else pod["metadata"]["name"]
        try:
            text: str = await self.core.read_namespaced_pod_log(name, self.name, container=container)
        except ApiException:
            return ""
        return text

    async def numbers(self, pod: Mapping[str, Any] | str, pattern: re.Pattern[str]) -> set[int]:
        """The order numbers in the app's log that ``pattern`` finds (``INVOICED``, ``ACCEPTED``)."""
        return {int(m) for m in pattern.findall(await self.log(pod))}

    def restarts(self, pod: Mapping[str, Any] | None) -> int:
        return int(container_status(pod).get("restartCount", 0))

    def sidecar_pid(self, pod: Mapping[str, Any]) -> int:
        """The host PID of the pod's sidecar container process (its containerd task)."""
        container_id = container_status(pod).get("containerID", "").removeprefix("containerd://")
        assert container_id, f"pod {pod['metadata']['name']} has no sidecar container yet"
        for line in containerd(self.cluster).ctr("task", "ls").splitlines()[1:]:
            task, pid, *_ = line.split()
            if task == container_id:
                return int(pid)
        raise AssertionError(f"containerd has no task {container_id} (pod {pod['metadata']['name']}'s sidecar)")

    def kill_sidecar(self, pod: Mapping[str, Any]) -> int:
        """SIGKILL the sidecar container's process, as an OOM kill or a crash would end it; its PID."""
        pid = self.sidecar_pid(pod)
        os.kill(pid, signal.SIGKILL)
        return pid

    @contextlib.asynccontextmanager
    async def sidecar(self, pod: Mapping[str, Any]) -> AsyncIterator[str]:
        """``127.0.0.1:<port>`` reaching the pod's application gRPC port (its loopback) through a port-forward."""
        settings = KubeSettings(kubeconfig=str(self.cluster.kubeconfig), namespace=self.name)
        forward = PortForward(settings, self.name, pod["metadata"]["name"], names.PORT_GRPC)
        address = await asyncio.to_thread(forward.__enter__)
        try:
            yield address
        finally:
            await asyncio.to_thread(forward.__exit__, None, None, None)

    async def goqctl(self, pod: Mapping[str, Any] | str, *args: str) -> subprocess.CompletedProcess[str]:
        """``goqctl --pod <pod> ...`` in this namespace, as a user runs it (through the kubeconfig)."""
        name = pod if isinstance(pod, str) else pod["metadata"]["name"]
        target = ["--kubeconfig", str(self.cluster.kubeconfig), "-n", self.name, "--pod", name]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        return await asyncio.to_thread(
            subprocess.run, [*GOQCTL, *target, *args], capture_output=True, text=True, timeout=120, env=env
        )

    async def poison_list(self, pod: Mapping[str, Any] | str) -> list[dict[str, Any]]:
        listed = await self.goqctl(pod, "poison", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        entries: list[dict[str, Any]] = json.loads(listed.stdout)
        return entries

    def operator_log(self) -> str:
        return self.cluster.operator_logs()


@pytest.fixture
async def space(goq_cluster: GoQCluster, e2e_api: k8s.ApiClient) -> AsyncIterator[ShopSpace]:
    """A namespace of its own, deleted (pods at once) at the test's end; the operator provides what the sidecars
    need in it once a GoQueue or a GoQ pod is there."""
    core = k8s.CoreV1Api(e2e_api)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await core.create_namespace({"metadata": {"name": name}})

    async def token_ready() -> bool:
        with contextlib.suppress(ApiException):
            return bool((await core.read_namespaced_service_account("default", name)).secrets)
        return False

    assert await eventually(token_ready), f"namespace {name} got no ServiceAccount token"
    try:
        yield ShopSpace(name, e2e_api, goq_cluster)
    finally:
        # Pods deleted at once (the kubelet kills their containers): a graceful stop of every pod, each after
        # the last, cost the suite about 7 minutes, and nothing is checked after the test.
        await core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
        await core.delete_namespace(name)
