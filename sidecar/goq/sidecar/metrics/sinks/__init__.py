"""Metrics sinks: where a sidecar's figures go on the GoQueue's ``metrics.interval``.

Built-ins ``prometheus`` (pull: ``/metrics`` serves them; flushing does nothing), ``log`` (a structured
line per flush), ``mongodb`` (a time-series document per flush) and ``pushgateway`` (push to a
Prometheus Pushgateway); plug-ins by entry point (group ``goq.metrics_sinks``).

- ``base``: the interface (``MetricsSink``) and what each flush hands it.
- ``builtin``: the built-in sinks.
- ``flushing``: flushing the figures to the GoQueue's sinks on its interval.
"""
