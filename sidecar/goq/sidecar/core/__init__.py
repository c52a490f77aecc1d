"""The engine and delivery both ways: what every API calls, and what moves messages between sidecars.

The engine sits above delivery (the ``core-layers`` contract): ``outbound``, ``admission``, ``lane``, ``inbound``,
``leases`` and ``backlog`` never import it. Neither reaches MongoDB, even indirectly: only through
``goq.sidecar.ports`` (``engine-port``).

- ``engine``: ``QueueManager``: send (validated and signed, then one call: ``Outbound.admit``), receive,
  acknowledge, reject, redrive, stats.
- ``outbound``: the send queue: ``admit``, what is still to deliver, a lane per destination, retry, poison.
- ``admission``: one send's way in: the send queue's bound, placement, the durable write, early delivery.
- ``lane``: one destination's messages in order, in batches to its least busy ready replica.
- ``backlog``: a bounded memory window per destination; persistent messages beyond it wait in the store.
- ``inbound``: what peers deliver: checks, de-duplication, the receive queue's bound; holds a ``leases.Leases``.
- ``leases``: the application's side of the receive queue: leases, give-back, acknowledge, reject, expiry.
- ``tracing``: OpenTelemetry hooks, free when off; ``tracing_otel`` is the tracer, imported only when on.
"""
