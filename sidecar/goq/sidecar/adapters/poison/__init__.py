"""Poison queues: where messages go that cannot be delivered or consumed, with the reason.

Sinks are plug-ins found by entry point (group ``goq.poison_sinks``) implementing
``goq.sidecar.ports.poison.PoisonSink``; the built-ins register the same way. Only the sink a GoQueue names is
loaded. ``goq.sidecar.domain.poison_reasons`` makes every poison record, one constructor per way a message is
given up on.

- ``mongodb``: the default sink, a MongoDB collection, browsable and redrivable.
- ``logging_sink``: ``log``, one structured line per message, keeping nothing.
- ``file_sink``: ``file``, JSON lines in a file, rotated by size, written durably.
- ``http_sink``: ``http``, POSTed as JSON to a URL, retried.
- ``records_json``: a poisoned message as JSON, for the sinks that write it out.
- ``transient_only``: the sink of a sidecar without MongoDB.
- ``loading``: finding and creating the sink a GoQueue names.
"""
