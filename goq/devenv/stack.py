"""GoQ itself on the local control plane: the CRDs, the operator with its webhook, and the pod runner.

``goq-dev up --with-goq``, ``goq-dev demo`` and the end-to-end tests start the same things the same way:
the operator as a process whose webhook the API server really calls (on a loopback port), and the pod
runner as the node's kubelet. Each sidecar gets the MongoDB URI from the Secret ``goq-mongodb`` (key
``uri``) in its namespace, which the operator copies there from its source ``goq-system/goq-mongodb``
(``GOQ_MONGODB_SOURCE_SECRET``), as in a cluster install.
"""

import asyncio
import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from goq.devenv import applying, processes
from goq.devenv.errors import DevEnvError
from goq.devenv.ports import free_port

OPERATOR_NAMESPACE: Final = "goq-system"
MONGODB_SECRET: Final = "goq-mongodb"
OPERATOR_CODE: Final = "import sys; from goq.cli.operator import main; sys.exit(main())"
RUNNER_CODE: Final = "import sys; from goq.devenv.podrunner.__main__ import main; sys.exit(main())"


def repo_root() -> Path:
    """The checkout GoQ is installed from (editable install): crds/, manifests/, examples/."""
    import goq

    return Path(goq.__file__).resolve().parents[1]


def _clean_env() -> dict[str, str]:
    """No proxies: everything here talks to loopback."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


async def connect(kubeconfig: Path) -> k8s.ApiClient:
    """An API client for the admin kubeconfig (close it with ``await api.close()``)."""
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return k8s.ApiClient(configuration)


async def prepare(api: k8s.ApiClient) -> list[str]:
    """CRDs, the operator's namespace (never injected) and the sidecars' ClusterRole."""
    root = repo_root()
    crds = [
        *applying.documents(root / "crds" / "goqueues.yaml"),
        *applying.documents(root / "crds" / "retrypolicies.yaml"),
    ]
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": OPERATOR_NAMESPACE, "labels": {"goq.io/injection": "disabled"}},
    }
    role = [d for d in applying.documents(root / "manifests" / "rbac" / "sidecar.yaml") if d["kind"] == "ClusterRole"]
    return await applying.apply_all(api, [*crds, namespace, *role])


async def mongodb_secret(api: k8s.ApiClient, namespace: str, uri: str) -> str:
    """A Secret ``goq-mongodb`` with ``uri``: in ``OPERATOR_NAMESPACE`` the operator's source, which it
    copies into every namespace with GoQ pods; elsewhere one made by hand (the operator leaves it be)."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": MONGODB_SECRET, "namespace": namespace},
        "data": {"uri": base64.b64encode(uri.encode()).decode()},
    }
    return await applying.apply(api, secret)


@dataclass
class Started:
    """A process of the stack and what others need to know about it."""

    server: processes.ServerProcess
    details: dict[str, Any]


def _healthz(port: int) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=2, context=context) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


async def _registered(api: k8s.ApiClient, port: int) -> bool:
    admission = k8s.AdmissionregistrationV1Api(api)
    try:
        found = await admission.read_mutating_webhook_configuration("goq-sidecar-injector")
    except k8s.ApiException:
        return False
    return f"127.0.0.1:{port}/" in (found.webhooks[0].client_config.url or "")


async def _wait(what: str, check: Any, server: processes.ServerProcess, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if not server.alive():
            raise DevEnvError(f"{server.name} exited while {what}; its log ends:\n{server.log_tail()}")
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise DevEnvError(f"{server.name} not {what} after {within:.0f} s; its log ends:\n{server.log_tail()}")
        await asyncio.sleep(0.2)


async def start_operator(
    api: k8s.ApiClient,
    kubeconfig: Path,
    workdir: Path,
    *,
    detached: bool = False,
    env: Mapping[str, str] | None = None,
    within: float = 90.0,
) -> Started:
    """``goq-operator`` with its webhook on a free loopback port; returns once it serves and is registered."""
    port = free_port()
    settings = {
        "KUBECONFIG": str(kubeconfig),
        "GOQ_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
        "GOQ_WEBHOOK_HOST": "127.0.0.1",
        "GOQ_WEBHOOK_PORT": str(port),
        "GOQ_WEBHOOK_URL": f"https://127.0.0.1:{port}",
        "GOQ_MONGODB_SECRET": MONGODB_SECRET,
        "GOQ_MONGODB_SOURCE_SECRET": MONGODB_SECRET,
        "GOQ_STALE_AFTER": "15s",
        "GOQ_SWEEP_INTERVAL": "2s",
        **(env or {}),
    }
    argv = [sys.executable, "-c", OPERATOR_CODE]
    server = processes.start(
        "goq-operator", argv, workdir / "operator.log", detached=detached, env=_clean_env() | settings
    )
    try:
        await _wait("serving its webhook", lambda: asyncio.to_thread(_healthz, port), server, within)
        await _wait("registering its webhooks", lambda: _registered(api, port), server, within)
    except BaseException:
        server.stop()
        raise
    return Started(server, {"webhook": f"https://127.0.0.1:{port}"})


async def start_pod_runner(
    kubeconfig: Path,
    workdir: Path,
    *,
    detached: bool = False,
    sidecar_env: Mapping[str, str] | None = None,
    backoff: float = 1.0,
    node: str = "goq-local",
    volume_sync: float | None = None,
    within: float = 60.0,
) -> Started:
    """The pod runner for ``node``; returns once its node is registered and its DNS serves.

    ``volume_sync``: seconds between refreshes of Secret volumes (``None``: the runner's default)."""
    directory = workdir / "pod-runner"
    info = directory / "runner.json"
    info.unlink(missing_ok=True)
    argv = [sys.executable, "-c", RUNNER_CODE, "--kubeconfig", str(kubeconfig), "--dir", str(directory)]
    argv += ["--backoff", str(backoff), "--node", node]
    if volume_sync is not None:
        argv += ["--volume-sync", str(volume_sync)]
    for name, value in (sidecar_env or {}).items():
        argv += ["--sidecar-env", f"{name}={value}"]
    server = processes.start("goq-pod-runner", argv, workdir / "pod-runner.log", detached=detached, env=_clean_env())

    async def ready() -> bool:
        return info.exists()

    try:
        await _wait("ready", ready, server, within)
    except BaseException:
        server.stop()
        raise
    return Started(server, json.loads(info.read_text()))
