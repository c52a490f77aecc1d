"""Poison queues: where messages go that cannot be delivered or consumed, with the reason.

Sinks are plug-ins found by entry point (group ``goq.poison_sinks``); the built-ins register the
same way. Only the sink a GoQueue names is loaded. ``reasons`` makes every poison record, one
constructor per way a message is given up on.
"""
