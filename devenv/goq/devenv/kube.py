"""A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager.

The binaries are Kubernetes v1.20.2 built from Debian's source package by ``build-kube.sh`` into a
cache outside the work tree (``GOQ_CACHE``, default ``~/.cache/goq``); ``GOQ_KUBE_BIN`` names another
directory holding ``etcd``, ``kube-apiserver`` and ``kube-controller-manager``. Alone, there is no scheduler
and no kubelet: pods stay Pending.

Asked to serve a real node (``node_address``, see ``goq.devenv.node``), the plane changes only in what a
node needs: the API server listens on the host's end of the node's veth (an address the pods reach) and
authorizes kubelets (``Node,RBAC``), it reaches the kubelet with a client certificate (``kubectl logs``,
``exec``), the node lifecycle controller lifts the node's not-ready taint, and kube-scheduler runs.
"""

import ipaddress
import json
import logging
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Final

import yaml

from goq.devenv import certs, processes
from goq.devenv.errors import DevEnvError
from goq.devenv.ports import free_ports

log = logging.getLogger("goq.devenv")

KUBE_VERSION: Final = "v1.20.2"
BINARIES: Final = ("etcd", "kube-apiserver", "kube-controller-manager")
NODE_BINARIES: Final = ("kube-scheduler",)
"""What the plane needs beyond ``BINARIES`` to serve a real node (built by ``build-kube.sh --node``)."""
SERVICE_CIDR: Final = "10.96.0.0/16"
# Controllers that need nodes, clouds or volumes, none of which exist here.
_OFF_CONTROLLERS: Final = [
    "-nodeipam",
    "-nodelifecycle",
    "-cloud-node-lifecycle",
    "-route",
    "-service",
    "-attachdetach",
    "-persistentvolume-binder",
    "-persistentvolume-expander",
    "-pv-protection",
    "-pvc-protection",
]
_CONTROLLERS: Final = ",".join(["*", *_OFF_CONTROLLERS])
# With a real node, its lifecycle controller must run: it lifts the not-ready taint the kubelet registers with.
_NODE_CONTROLLERS: Final = ",".join(["*", *(c for c in _OFF_CONTROLLERS if c != "-nodelifecycle")])


def cache_dir() -> Path:
    """Where built binaries are kept between runs: outside any work tree."""
    if named := os.environ.get("GOQ_CACHE"):
        return Path(named)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "goq"


def bin_dir() -> Path:
    """The directory that holds (or will hold) the control-plane binaries."""
    if named := os.environ.get("GOQ_KUBE_BIN"):
        return Path(named)
    return cache_dir() / f"kube-{KUBE_VERSION}" / "bin"


def missing_binaries(directory: Path) -> list[str]:
    """The control-plane binaries not yet in ``directory``."""
    return [b for b in BINARIES if not os.access(directory / b, os.X_OK)]


def ensure_binaries(*, build: bool = True) -> Path:
    """Return the binaries' directory, building them first (once, about 3-7 minutes) if missing."""
    directory = bin_dir()
    missing = missing_binaries(directory)
    if not missing:
        return directory
    if not build or "GOQ_KUBE_BIN" in os.environ:
        raise DevEnvError(f"{', '.join(missing)} missing in {directory}; run `goq-dev build-kube` first")
    log.info("building Kubernetes %s once into %s (a few minutes; later runs reuse it)", KUBE_VERSION, directory)
    script = Path(__file__).with_name("build-kube.sh")
    env = {**os.environ, "GOQ_CACHE": str(cache_dir())}
    if subprocess.run(["bash", str(script)], env=env, check=False).returncode != 0:
        raise DevEnvError(f"building the control plane failed (see the output above of {script})")
    if missing := missing_binaries(directory):
        raise DevEnvError(f"the build finished but {', '.join(missing)} are still missing in {directory}")
    return directory


def _server_env() -> dict[str, str]:
    """The servers' environment without proxy settings: webhook calls must go straight to loopback."""
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


class KubeControlPlane:
    """etcd + kube-apiserver + kube-controller-manager with their state and certificates in ``workdir``.

    ``node_address`` (the host's end of a real node's veth, see ``goq.devenv.node``) makes the plane
    serve a real node: the API server listens there instead of on loopback, and kube-scheduler runs.
    ``service_cidr`` is the ClusterIP range (a node's own, routed to it: see ``goq.devenv.node.netns``).
    """

    def __init__(
        self,
        workdir: Path,
        binaries: Path | None = None,
        *,
        node_address: str | None = None,
        service_cidr: str = SERVICE_CIDR,
    ) -> None:
        self.workdir = workdir
        self.binaries = binaries
        self.node_address = node_address
        self.service_cidr = service_cidr
        self.etcd_port, self.etcd_peer_port, self.port, self.scheduler_port = free_ports(4)
        self.pki = workdir / "pki"
        self.kubeconfig = workdir / "kubeconfig"
        self.servers: list[processes.ServerProcess] = []

    @property
    def url(self) -> str:
        """The API server's address."""
        return f"https://{self.node_address or '127.0.0.1'}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signs the API server's certificate and the clients' certificates."""
        return self.pki / "ca.crt"

    def start(self, *, detached: bool = False, timeout: float = 120.0) -> dict[str, float]:
        """Start all three servers and wait until each serves; return each one's start-up seconds.

        Ready means: etcd healthy, ``/readyz`` ok, and the default ServiceAccount with its token made
        by the controller manager (so pods can be created at once).
        """
        binaries = self.binaries or ensure_binaries()
        if self.node_address and (missing := [b for b in NODE_BINARIES if not os.access(binaries / b, os.X_OK)]):
            raise DevEnvError(f"{', '.join(missing)} missing in {binaries}; run `goq-dev node build` first")
        self._write_pki()
        self._write_kubeconfig()
        timings: dict[str, float] = {}
        try:
            for name, argv, ready in self._plan(binaries):
                started = time.monotonic()
                server = processes.start(name, argv, self.workdir / f"{name}.log", detached=detached, env=_server_env())
                self.servers.append(server)
                processes.wait_until(f"ready at {self.url}", ready, server, timeout)
                timings[name] = time.monotonic() - started
                log.info("%s ready in %.1f s (pid %d)", name, timings[name], server.pid)
        except BaseException:
            self.stop()
            raise
        return timings

    def stop(self) -> None:
        """Stop the servers in reverse order of their start."""
        while self.servers:
            self.servers.pop().stop()

    def _plan(self, binaries: Path) -> list[tuple[str, list[str], Callable[[], bool]]]:
        pki, w = self.pki, self.workdir
        etcd = [
            str(binaries / "etcd"),
            "--name", "goq-local",
            "--data-dir", str(w / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.etcd_peer_port}",
            "--initial-cluster", f"goq-local=http://127.0.0.1:{self.etcd_peer_port}",
            "--unsafe-no-fsync",
        ]  # fmt: skip
        apiserver = [
            str(binaries / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            "--insecure-port=0",
            "--endpoint-reconciler-type=none",  # its Endpoints would be on loopback, which is refused
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={self.service_cidr}",
            "--authorization-mode=RBAC",
            "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            "--allow-privileged=true",
            "--profiling=false",
            f"--cert-dir={pki}",
        ]
        controller_manager = [
            str(binaries / "kube-controller-manager"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--port=0",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--leader-elect=false",
            f"--controllers={_CONTROLLERS}",
            "--cluster-name=goq-local",
        ]
        plan: list[tuple[str, list[str], Callable[[], bool]]] = [
            ("etcd", etcd, self._etcd_healthy),
            ("kube-apiserver", apiserver, lambda: self._get("/readyz") == 200),
            ("kube-controller-manager", controller_manager, self._default_token_exists),
        ]
        if self.node_address:
            self._serve_node(apiserver, controller_manager)
            plan.append(("kube-scheduler", self._scheduler_argv(binaries), self._scheduler_healthy))
        return plan

    def _serve_node(self, apiserver: list[str], controller_manager: list[str]) -> None:
        """Change the API server's and controller manager's flags for a real node (see the class)."""
        pki = self.pki
        replaced = {
            "--bind-address=127.0.0.1": f"--bind-address={self.node_address}",
            "--advertise-address=127.0.0.1": f"--advertise-address={self.node_address}",
            # Not loopback any more: the `kubernetes` Service gets its endpoint, for pods in the cluster.
            "--endpoint-reconciler-type=none": "--endpoint-reconciler-type=lease",
            "--authorization-mode=RBAC": "--authorization-mode=Node,RBAC",
            f"--controllers={_CONTROLLERS}": f"--controllers={_NODE_CONTROLLERS}",
        }
        for argv in (apiserver, controller_manager):
            argv[:] = [replaced.get(arg, arg) for arg in argv]
        apiserver += [
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _scheduler_argv(self, binaries: Path) -> list[str]:
        return [
            str(binaries / "kube-scheduler"),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.scheduler_port}",
            "--port=0",
            "--leader-elect=false",
        ]

    def _scheduler_healthy(self) -> bool:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate; /healthz only
        try:
            url = f"https://127.0.0.1:{self.scheduler_port}/healthz"
            with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _write_pki(self) -> None:
        ca = certs.make_ca(self.pki)
        hosts: tuple[str, ...] = (
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        )
        if self.node_address:  # pods reach it on the veth, or by the `kubernetes` Service's ClusterIP
            cluster_ip = str(ipaddress.ip_network(self.service_cidr)[1])
            hosts += (self.node_address, cluster_ip, "kubernetes.default.svc.cluster.local")
        certs.issue(ca, self.pki, "apiserver", "kube-apiserver", hosts=hosts, server=True)
        certs.issue(ca, self.pki, "admin", "goq-admin", organization="system:masters", client=True)
        if self.node_address:
            certs.issue(
                ca, self.pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                organization="system:masters", client=True,
            )  # fmt: skip
        certs.make_signing_key(self.pki, "sa")

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "goq-local",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [
                {
                    "name": "goq-admin",
                    "user": {
                        "client-certificate": str(self.pki / "admin.crt"),
                        "client-key": str(self.pki / "admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "goq-local", "context": {"cluster": "goq-local", "user": "goq-admin"}}],
            "current-context": "goq-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _etcd_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.etcd_port}/health", timeout=2) as resp:
                return b'"true"' in resp.read()
        except (OSError, urllib.error.URLError):
            return False

    def _default_token_exists(self) -> bool:
        """The ServiceAccount controller made ``default`` and the token controller gave it a secret."""
        status, body = self._get_json("/api/v1/namespaces/default/serviceaccounts/default")
        return status == 200 and bool(json.loads(body).get("secrets"))

    def _get(self, path: str) -> int:
        return self._get_json(path)[0]

    def _get_json(self, path: str) -> tuple[int, bytes]:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=2, context=context) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except (OSError, urllib.error.URLError):
            return 0, b""
