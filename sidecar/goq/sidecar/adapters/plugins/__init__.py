"""Plug-ins found by entry point: poison sinks (``goq.poison_sinks``) and metrics sinks (``goq.metrics_sinks``).

Only what a GoQueue names is loaded; a missing or broken plug-in fails the start with its name.
"""
