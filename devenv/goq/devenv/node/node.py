"""A real Kubernetes node on this machine: containerd, kubelet and kube-proxy in namespaces of its own.

Use::

    node = RealNode(workdir)
    node.create_network()                 # the API server must listen on the node's veth
    plane = KubeControlPlane(workdir / "kube", node_address=node.host_address, service_cidr=node.service_cidr)
    plane.start()
    node.start(plane)                     # returns once the node is Ready, its cluster DNS answering
    ...
    node.stop(); plane.stop()

The daemons share the node's network namespace (``netns``) and mount namespace (``mountns``): the
machine paths they write are the node's own, so several nodes run on one machine without meeting.
Everything the node changes on the machine is written to ``node.json`` in ``workdir`` before it is
changed, and ``stop`` undoes it (``cleanup.teardown``). A node started for a test session (not
``detached``) also has a janitor: a process that undoes it all when the starting process ends, even
by SIGKILL, since containerd's shims and the containers outlive their parents.
"""

import contextlib
import json
import logging
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Final

import dns.exception
import dns.resolver
import yaml

from goq.devenv import certs, processes
from goq.devenv.errors import DevEnvError
from goq.devenv.kube import KubeControlPlane
from goq.devenv.node import binaries, cleanup, images, mountns, netns
from goq.devenv.node.kubelet import Kubelet
from goq.devenv.node.record import Daemon
from goq.devenv.node.runtime import Containerd

log = logging.getLogger("goq.devenv")

MAX_SOCKET_PATH: Final = 107
"""The longest path a unix socket may have (``sun_path``, less its terminating NUL)."""
LONGEST_SOCKET: Final = "/kubelet/root/pod-resources/123456789"
"""The longest socket path the kubelet makes under the node's work directory (a 9-digit random name)."""
CLUSTER_DNS_USER: Final = "goq:cluster-dns"
"""The cluster DNS add-on's user (``cluster_dns``), bound to the bootstrap ClusterRole ``system:kube-dns``."""


class RealNode:
    """One node; see the module docstring for the order of calls."""

    def __init__(self, workdir: Path, *, detached: bool = False) -> None:
        longest = len(str(workdir.resolve())) + len(LONGEST_SOCKET)
        if longest > MAX_SOCKET_PATH:  # else the kubelet dies at start with "bind: invalid argument"
            raise DevEnvError(
                f"the node's work directory {workdir} is too long: the kubelet makes sockets under it, and a socket's "
                f"path may have {MAX_SOCKET_PATH} characters at most; use a directory of at most "
                f"{MAX_SOCKET_PATH - len(LONGEST_SOCKET)} characters"
            )
        self.workdir = workdir
        self.detached = detached
        self.record_path = workdir / "node.json"
        self.record = netns.plan(workdir)
        self.janitor: subprocess.Popen[bytes] | None = None
        self.servers: list[processes.ServerProcess] = []

    @property
    def name(self) -> str:
        """The node's name, also its network namespace's and its cgroup's."""
        return self.record.name

    @property
    def host_address(self) -> str:
        """The host's end of the veth: where the API server listens for the node and its pods."""
        return self.record.host_address

    @property
    def service_cidr(self) -> str:
        """The ClusterIP range the plane must use: the host routes it to the node (``netns``)."""
        return self.record.service_cidr

    @property
    def dns_address(self) -> str:
        """Where the cluster DNS add-on answers (the kubelet's ``clusterDNS``): the node's own address."""
        return self.record.node_address

    def _save(self) -> None:
        self.record.save(self.record_path)

    def create_network(self) -> None:
        """Take a free node number; create the namespace, veth and route (unless detached, a janitor first).

        The name and addresses are final from here on (``plan`` in ``__init__`` only proposes them).
        """
        if os.geteuid() != 0:
            raise DevEnvError("a real node needs root: network namespaces, mounts and cgroups")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._save()
        if not self.detached:
            self._start_janitor()
        try:
            with cleanup.machine_lock():  # one node at a time takes a free number and joins the machine's state
                self.record = netns.plan(self.workdir)
                self.record.owner = uuid.uuid4().hex
                cleanup.claim(self.record, self._save)
                made_netns_dir = not netns.NETNS_DIR.exists()
                netns.create(self.record, self._save)
                cleanup.join(self.record, made_netns_dir)  # the kernel settings, before any node changes them
                self._save()
        except BaseException:
            self.stop()
            raise

    def _start_janitor(self) -> None:
        code = [sys.executable, "-m", "goq.devenv.node.janitor", str(self.record_path)]
        with (self.workdir / "janitor.log").open("ab") as out:
            self.janitor = subprocess.Popen(
                code, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start(self, plane: KubeControlPlane, timeout: float = 120.0) -> dict[str, float]:
        """Start containerd, import the images, start the kubelet and kube-proxy; wait for the node Ready.

        Returns each step's seconds.
        """
        if not netns.exists(self.record.netns):
            raise DevEnvError(f"call create_network() before start(): no network namespace {self.record.netns}")
        if plane.service_cidr != self.service_cidr:
            raise DevEnvError(
                f"the control plane's service range is {plane.service_cidr}, the node routes {self.service_cidr}: "
                "make the plane with service_cidr=node.service_cidr, or webhooks behind Services are unreachable"
            )
        timings: dict[str, float] = {}
        try:
            bin_dir = binaries.ensure()
            runtime_dir = binaries.runtime_dir()
            path = binaries.tool_path(self.workdir / "tools")
            self._record_changes()
            self._make_cgroup()
            started = time.monotonic()
            mountns.create(self.record, self._save, [bin_dir, runtime_dir, plane.pki])
            containerd = Containerd(self.record, runtime_dir, path)
            self._started(containerd.start(self.detached), "containerd")
            for spec in (images.pause_image(bin_dir), images.busybox_image(runtime_dir)):
                containerd.import_image(images.write_archive(spec, self.workdir / "images" / f"{spec.name}.tar"))
            timings["containerd and images"] = time.monotonic() - started
            started = time.monotonic()
            kubelet = Kubelet(self.record, plane, bin_dir, path)
            self._started(kubelet.start(containerd.endpoint, self.detached), "kubelet")
            self._started(self._start_kube_proxy(plane, bin_dir, path), "kube-proxy")
            self._started(self._start_cluster_dns(plane), os.path.basename(sys.executable))
            processes.wait_until(f"node {self.name} Ready", lambda: self._ready(plane), self.servers[1], timeout, 0.5)
            timings["kubelet to Ready"] = time.monotonic() - started
        except BaseException:
            self.stop()
            raise
        return timings

    def _record_changes(self) -> None:
        """Write down, before any daemon runs, what they will change: so that all of it is undone.

        The kernel settings are recorded already (``cleanup.join``); the machine paths the daemons write
        are in their mount namespace. On the host: ``/run/<node>``, a mount point holding the namespace's file.
        """
        self.record.mount_roots = [str(mountns.run_dir(self.record))]  # /run/<node>: recorded by cleanup.claim
        self.record.cgroup = self.name
        self._save()

    def _make_cgroup(self) -> None:
        """``/<node>`` in every cgroup hierarchy, the kubelet's ``cgroupRoot``; cpuset needs its CPUs copied."""
        for hierarchy in cleanup.CGROUP_ROOT.iterdir():
            if not (hierarchy / "cgroup.procs").exists():
                continue
            mine = hierarchy / self.name
            mine.mkdir(exist_ok=True)
            for setting in ("cpuset.cpus", "cpuset.mems"):
                if (hierarchy / setting).exists():
                    (mine / setting).write_text((hierarchy / setting).read_text())

    def _join_cgroup(self, pid: int) -> None:
        """Put a daemon in ``/<node>/daemons``: the shims containerd starts stay there, to be found on stop."""
        for hierarchy in cleanup.CGROUP_ROOT.iterdir():
            mine = hierarchy / self.name
            if not mine.is_dir() or hierarchy.name == "unified":
                continue
            daemons = mine / "daemons"
            daemons.mkdir(exist_ok=True)
            for setting in ("cpuset.cpus", "cpuset.mems"):
                if (mine / setting).exists():
                    (daemons / setting).write_text((mine / setting).read_text())
            with contextlib.suppress(OSError):
                (daemons / "cgroup.procs").write_text(str(pid))

    def _started(self, server: processes.ServerProcess, executable: str) -> None:
        server.executable = executable  # nsenter has exec'ed it: the PID runs the daemon itself
        self.servers.append(server)
        self._join_cgroup(server.pid)
        self.record.daemons.append(Daemon(server.name, server.pid, executable))
        self._save()

    def _start_kube_proxy(self, plane: KubeControlPlane, bin_dir: Path, path: str) -> processes.ServerProcess:
        """kube-proxy (iptables, in the node's namespace only) serves ClusterIPs to the node's pods."""
        workdir = self.workdir / "kube-proxy"
        workdir.mkdir(parents=True, exist_ok=True)
        ca = certs.KeyPair(plane.pki / "ca.crt", plane.pki / "ca.key")
        client = certs.issue(ca, workdir, "client", "system:kube-proxy", client=True)  # bound to system:node-proxier
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "c", "cluster": {"server": plane.url, "certificate-authority": str(ca.cert)}}
                    ],
                    "users": [
                        {"name": "u", "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}
                    ],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        argv = mountns.enter(
            self.record,
            str(bin_dir / "kube-proxy"),
            f"--kubeconfig={kubeconfig}",
            f"--hostname-override={self.name}",
            f"--bind-address={self.record.node_address}",
            f"--cluster-cidr={self.record.pod_cidr}",
            "--proxy-mode=iptables",
            # conntrack limits are the machine's, not the namespace's: leave them alone.
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            "--metrics-bind-address=127.0.0.1:10249",
            "--healthz-bind-address=127.0.0.1:10256",
        )
        env = {**os.environ, "PATH": path}
        return processes.start("kube-proxy", argv, workdir / "kube-proxy.log", detached=self.detached, env=env)

    def _start_cluster_dns(self, plane: KubeControlPlane) -> processes.ServerProcess:
        """The cluster DNS add-on (``cluster_dns``) in the node's namespace; returns once it answers."""
        workdir = self.workdir / "cluster-dns"
        workdir.mkdir(parents=True, exist_ok=True)
        ca = certs.KeyPair(plane.pki / "ca.crt", plane.pki / "ca.key")
        client = certs.issue(ca, workdir, "client", CLUSTER_DNS_USER, client=True)
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "goq:cluster-dns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kube-dns"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": CLUSTER_DNS_USER}],
        }
        post_json(plane, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
        argv = netns.in_netns(
            self.record.netns,
            sys.executable,
            "-I",  # isolated: a working directory holding the repository's operator/ would shadow the stdlib's
            "-m",
            "goq.devenv.node.cluster_dns",
            f"--api={plane.url}",
            f"--ca={ca.cert}",
            f"--cert={client.cert}",
            f"--key={client.key}",
            f"--listen={self.dns_address}",
        )
        server = processes.start("cluster-dns", argv, workdir / "cluster-dns.log", detached=self.detached)
        processes.wait_until(f"answering on {self.dns_address}:53", self._dns_answers, server, timeout=30)
        return server

    def _dns_answers(self) -> bool:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.dns_address]
        resolver.lifetime = 1.0
        try:
            resolver.resolve("kubernetes.default.svc.cluster.local.", "A", search=False)
        except dns.exception.DNSException:
            return False
        return True

    def _ready(self, plane: KubeControlPlane) -> bool:
        """Ready, and the not-ready taint lifted (by the node lifecycle controller): pods can be scheduled."""
        node = get_json(plane, f"/api/v1/nodes/{self.name}")
        if node is None:
            return False
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", [])
        )
        tainted = any(t["key"] == "node.kubernetes.io/not-ready" for t in node.get("spec", {}).get("taints", []))
        return ready and not tainted

    def stop(self) -> list[str]:
        """Undo everything (see ``cleanup.teardown``); return what could not be undone (empty: all)."""
        while self.servers:  # our children: stopped and reaped here, the rest by the record
            self.servers.pop().stop(timeout=10)
        left = cleanup.teardown(self.record_path)
        if self.janitor is not None:
            assert self.janitor.stdin is not None
            self.janitor.stdin.close()  # it tears down again, finds nothing left, and exits
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.janitor.wait(timeout=60)
            self.janitor = None
        return left


def post_json(plane: KubeControlPlane, path: str, body: dict[str, Any]) -> None:
    """POST ``body`` to ``path`` as the plane's admin; one that exists already (409) is fine."""
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    context.load_cert_chain(str(plane.pki / "admin.crt"), str(plane.pki / "admin.key"))
    request = urllib.request.Request(
        f"{plane.url}{path}", json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=context):
            return
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise DevEnvError(f"POST {path} answered {exc.code}: {exc.read().decode(errors='replace')}") from exc


def get_json(plane: KubeControlPlane, path: str) -> Any:
    """GET ``path`` from the API server as its admin; ``None`` unless it answered 200."""
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    context.load_cert_chain(str(plane.pki / "admin.crt"), str(plane.pki / "admin.key"))
    try:
        with urllib.request.urlopen(f"{plane.url}{path}", timeout=5, context=context) as resp:
            return json.loads(resp.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
