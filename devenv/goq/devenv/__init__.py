"""Real servers on this machine for development and tests: MongoDB, a Kubernetes control plane, and GoQ
on a real node (``goq.devenv.node``: kubelet, containerd, GoQ's images and its install), plus ``goq-dev``.

Owns starting them on free loopback ports, waiting until they serve, and stopping them by their own
PIDs; applying manifests without kubectl; the demo's story. Product code (operator, sidecar, webhook)
never imports this package, and the product images leave it out.
"""
