"""The node's kubelet: its certificates, kubeconfig and configuration, started in the node's namespace.

It authenticates as ``system:node:<node>`` (group ``system:nodes``), which the API server's ``Node``
authorizer expects, and serves its own API on the node's address with a certificate for it, checking
callers (``kubectl logs``/``exec`` through the API server) by webhook. Its cgroups live under
``/<node>`` so that stopping the node can find and remove every one of them. It runs in the node's
network and mount namespaces (``mountns``): its mounts (its root directory, made rshared, and the pods'
volumes) are seen by runc, in the same namespace, and never by the host or another node.
"""

import os
from pathlib import Path

import yaml

from goq.devenv import certs, processes
from goq.devenv.kube import KubeControlPlane
from goq.devenv.node import mountns
from goq.devenv.node.record import NodeRecord


class Kubelet:
    """The kubelet of one node, talking to ``plane`` and to containerd at ``runtime_endpoint``."""

    def __init__(self, record: NodeRecord, plane: KubeControlPlane, bin_dir: Path, path: str) -> None:
        self.record = record
        self.plane = plane
        self.bin_dir = bin_dir
        self.path = path
        self.workdir = Path(record.workdir) / "kubelet"
        self.root_dir = self.workdir / "root"
        self.server: processes.ServerProcess | None = None

    def _write_files(self) -> tuple[Path, Path]:
        pki = self.workdir / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca = certs.KeyPair(self.plane.pki / "ca.crt", self.plane.pki / "ca.key")
        name = self.record.name
        client = certs.issue(ca, pki, "client", f"system:node:{name}", organization="system:nodes", client=True)
        serving = certs.issue(ca, pki, "serving", name, hosts=(self.record.node_address, name), server=True)
        kubeconfig = self.workdir / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "goq-local",
                            "cluster": {"server": self.plane.url, "certificate-authority": str(ca.cert)},
                        }
                    ],
                    "users": [
                        {"name": name, "user": {"client-certificate": str(client.cert), "client-key": str(client.key)}}
                    ],
                    "contexts": [{"name": "node", "context": {"cluster": "goq-local", "user": name}}],
                    "current-context": "node",
                },
                sort_keys=False,
            )
        )
        kubeconfig.chmod(0o600)
        config = self.workdir / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "address": self.record.node_address,
                    "port": 10250,
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",  # the node namespace's own loopback
                    "healthzPort": 10248,
                    "tlsCertFile": str(serving.cert),
                    "tlsPrivateKeyFile": str(serving.key),
                    "authentication": {
                        "anonymous": {"enabled": False},
                        "webhook": {"enabled": True},
                        "x509": {"clientCAFile": str(ca.cert)},
                    },
                    "authorization": {"mode": "Webhook"},
                    "cgroupDriver": "cgroupfs",
                    "cgroupRoot": f"/{self.record.cgroup}",
                    "failSwapOn": False,
                    "protectKernelDefaults": False,
                    "clusterDomain": "cluster.local",
                    "clusterDNS": [self.record.node_address],  # the node's DNS add-on (cluster_dns) answers there
                    "resolvConf": str(self._resolv_conf()),
                    # The machine's disk is shared: never evict GoQ's test pods for it, never collect images.
                    "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
                    "imageGCHighThresholdPercent": 100,
                    "imageGCLowThresholdPercent": 99,
                    "serializeImagePulls": False,
                    "volumeStatsAggPeriod": "0s",
                    # A development node: a Secret's change reaches its volumes within ~10 s (a pod's resync,
                    # plus jitter), not a production kubelet's minute, so key rotations are seen in a test's time.
                    "syncFrequency": "10s",
                },
                sort_keys=False,
            )
        )
        return kubeconfig, config

    def _resolv_conf(self) -> Path:
        """No upstream for pods: cluster DNS answers the cluster's names, and the outside is out of reach."""
        path = self.workdir / "resolv.conf"
        path.write_text("")
        return path

    def start(self, runtime_endpoint: str, detached: bool) -> processes.ServerProcess:
        """Start the kubelet; it registers the node (readiness is waited for by the caller)."""
        kubeconfig, config = self._write_files()
        self.root_dir.mkdir(parents=True, exist_ok=True)
        argv = mountns.enter(
            self.record,
            str(self.bin_dir / "kubelet"),
            f"--config={config}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={self.root_dir}",
            f"--cert-dir={self.workdir / 'pki'}",
            "--container-runtime=remote",
            f"--container-runtime-endpoint={runtime_endpoint}",
            "--runtime-request-timeout=5m",
            f"--hostname-override={self.record.name}",
            f"--node-ip={self.record.node_address}",
            "--v=1",
        )
        env = {**os.environ, "PATH": self.path}
        self.server = processes.start("kubelet", argv, self.workdir / "kubelet.log", detached=detached, env=env)
        return self.server
