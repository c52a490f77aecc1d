"""Real servers on this machine for development and tests: MongoDB and a Kubernetes control plane.

Owns starting them on free loopback ports, waiting until they serve, and stopping them by their own
PIDs. Product code (operator, sidecar, webhook) never imports this package.
"""
