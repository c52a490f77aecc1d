"""A real Kubernetes node for the local cluster (opt-in): kubelet, kube-proxy, containerd, runc, CNI.

The node runs in a network namespace of its own, its daemons are Kubernetes v1.20.2 built from Debian's
source package and Debian 12's runtime packages, unpacked into the cache (``build-kube.sh --node``).
Everything it changes on the machine is undone when it stops. See docs/development.md, "A real node".
"""

from goq.devenv.node.node import RealNode

__all__ = ["RealNode"]
