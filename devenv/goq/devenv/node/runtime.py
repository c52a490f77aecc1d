"""containerd for the node: a private configuration, its CNI network, and images imported into it.

containerd runs in the node's network and mount namespaces (``mountns``: the shims' ``/run/containerd``
is the node's own) with its root under the node's work directory and its state and socket under
``/run/<node>``, which the host shares (``ctr`` imports images through the socket). Its CRI plugin must
set ``restrict_oom_score_adj``: root on this kind of VM lacks ``CAP_SYS_RESOURCE``, and runc otherwise
fails every sandbox with "can't get final child's PID from pipe". Pods get addresses from the node's pod
CIDR on a bridge; no masquerading.
"""

import json
import os
import socket
import subprocess
from pathlib import Path

from goq.devenv import processes
from goq.devenv.errors import DevEnvError
from goq.devenv.node import mountns
from goq.devenv.node.images import PAUSE_IMAGE
from goq.devenv.node.record import NodeRecord


class Containerd:
    """The node's container runtime; ``endpoint`` is what the kubelet is given."""

    def __init__(self, record: NodeRecord, runtime_dir: Path, path: str) -> None:
        self.record = record
        self.runtime_dir = runtime_dir
        self.path = path
        self.workdir = Path(record.workdir) / "containerd"
        self.run_dir = mountns.run_dir(record)
        self.socket = self.run_dir / "containerd.sock"
        self.server: processes.ServerProcess | None = None

    @property
    def endpoint(self) -> str:
        """The CRI endpoint for the kubelet."""
        return f"unix://{self.socket}"

    def write_config(self) -> Path:
        """containerd's config (version 2) and the CNI network; returns the config's path."""
        cni_dir = self.workdir / "net.d"
        cni_dir.mkdir(parents=True, exist_ok=True)
        (cni_dir / "10-goq.conflist").write_text(json.dumps(self._cni(), indent=2))
        runc = self.runtime_dir / "usr/sbin/runc"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{self.workdir / "root"}"
state = "{self.run_dir / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{self.socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.workdir / "opt"}"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  BinaryName = "{runc}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{self.runtime_dir / "usr/lib/cni"}"
  conf_dir = "{cni_dir}"
"""
        path = self.workdir / "config.toml"
        path.write_text(config)
        return path

    def _cni(self) -> dict[str, object]:
        return {
            "cniVersion": "0.4.0",
            "name": "goq-pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.record.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.workdir / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        }

    def start(self, detached: bool) -> processes.ServerProcess:
        """Start containerd in the node's namespace; return once it answers on its socket."""
        config = self.write_config()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        argv = mountns.enter(self.record, str(self.runtime_dir / "usr/bin/containerd"), "--config", str(config))
        env = {**os.environ, "PATH": self.path}
        self.server = processes.start("containerd", argv, self.workdir / "containerd.log", detached=detached, env=env)
        processes.wait_until(f"serving on {self.socket}", self._answers, self.server, timeout=60)
        return self.server

    def _answers(self) -> bool:
        with socket.socket(socket.AF_UNIX) as sock:
            return sock.connect_ex(str(self.socket)) == 0

    def ctr(self, *args: str) -> str:
        """Run ``ctr`` against this containerd in the ``k8s.io`` namespace (the CRI's); return its output."""
        argv = [str(self.runtime_dir / "usr/bin/ctr"), "--address", str(self.socket), "-n", "k8s.io", *args]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode:
            raise DevEnvError(f"`ctr {' '.join(args)}` failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout

    def import_image(self, archive: Path) -> None:
        """Import a ``docker save`` archive; the CRI sees the image at once."""
        self.ctr("image", "import", str(archive))
