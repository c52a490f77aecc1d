"""A local pod runner: it plays the kubelet for the local control plane (development and tests only).

It binds pending pods to a node it registers, gives each pod its own loopback address (127.x.y.z), runs
each container as a local process from the container's command, arguments and environment as they
stand after injection, reports pod status (phase, pod IP, container states, readiness from the
readiness probe), restarts crashed containers per ``restartPolicy`` with backoff, and stops them when
the pod is deleted. Its DNS responder answers for the cluster domain, since Endpoints refuse loopback
addresses. Product code never imports this package.

Modules: ``images`` (image -> local program), ``addresses`` (pod IPs), ``volumes`` (kept in sync as
a kubelet does, through ``atomic``, the kubelet's atomic writer) and ``environment`` (what a container
sees), ``containers`` (one process and its restarts), ``statuses`` (pod status, pure), ``pods`` (one
pod's lifecycle), ``dns``, ``running`` (the loop over the cluster's pods), ``__main__`` (the process).
"""
