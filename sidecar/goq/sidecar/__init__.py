"""The GoQ queue manager (``goq.sidecar``): the sidecar that stores, signs and delivers messages.

Its packages are its layers, from the top; each imports only those below it (the ``sidecar-layers`` contract in
pyproject.toml, docs/architecture.md):

- ``runtime``: the process: starts the servers over the engine, and stops them in order.
- ``wiring``: builds the engine and large messages from ``settings``: the module that picks the stores and sinks.
- ``settings``, ``collecting``, ``grpc_core``: the process's environment, garbage collection and gRPC I/O engine.
- ``apis``: what the sidecar serves: the application's gRPC and REST APIs, the peer port, health.
- ``metrics``: the figures out: Prometheus collectors and the metrics sinks.
- ``large``: large messages, in chunks beside a small signed envelope.
- ``core``: the engine (``QueueManager``, what the APIs call) and delivery both ways.
- ``adapters``: MongoDB and memory stores, poison sinks, peers, Kubernetes, mounted Secrets, plug-in loading.
- ``domain``: what the sidecar keeps about a message and the rules about it; no I/O.
- ``ports``: the interfaces the core talks to its stores and poison sinks through.

Must not import ``goq.operator`` or ``goq.webhook``.
"""
