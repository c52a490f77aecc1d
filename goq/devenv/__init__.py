"""Real servers on this machine for development and tests: MongoDB, a Kubernetes control plane, and GoQ
on it (the operator with its webhook, and the pod runner that plays the kubelet), plus ``goq-dev``.

Owns starting them on free loopback ports, waiting until they serve, and stopping them by their own
PIDs; applying manifests without kubectl; the demo's story. Product code (operator, sidecar, webhook)
never imports this package, and the product images leave it out.
"""
