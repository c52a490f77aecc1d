"""The sidecar's figures out: read by Prometheus at scrape time, or flushed to a metrics sink.

- ``collectors``: the ``goq_*`` metrics from the engine's figures, and the process's own.
- ``sinks``: metrics sinks by entry point (``goq.metrics_sinks``): the interface, the built-ins, the flushing.
"""
