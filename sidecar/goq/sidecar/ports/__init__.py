"""The interfaces the core talks through; adapters implement them and ``runtime`` picks which.

- ``stores``: ``OutboxStore``, ``InboxStore`` and ``Custody`` (resuming at start, heartbeat, adoption).
- ``poison``: ``PoisonSink`` (and ``BrowsablePoisonSink``), and the ``SinkContext`` a sink factory gets.

``core.backlog.SpillStore``, ``metrics.sinks.base.MetricsSink`` and ``adapters.resolving.Resolver`` are ports too,
kept beside their users.
"""
