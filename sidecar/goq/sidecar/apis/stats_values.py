"""The figures of the ``Stats`` answer, read once for both APIs: gRPC ``Stats`` and REST ``GET /v1/stats``.

Which figures there are, their names and what they mean is ``goq.stats_fields.STATS``; here is only where each
one is read from (the engine's depths and counters, the large messages' progress).
"""

from goq.sidecar.core.engine import QueueManager
from goq.sidecar.large.service import LargeMessages
from goq.stats_fields import STATS


def stat_values(engine: QueueManager, large: LargeMessages | None) -> dict[str, int | str]:
    """Every figure of ``STATS`` by its ``name``, in the table's order (zero for large messages without them)."""
    stats = engine.stats()
    c = stats.counters
    p = large.progress if large is not None else None
    return {  # in the table's order: a test holds the keys to STAT_NAMES
        "identity": stats.identity,
        "send_queue": stats.send_queue,
        "receive_queue": stats.receive_queue,
        "in_flight": stats.in_flight,
        "sent": c.sent,
        "delivered": c.delivered,
        "received": c.received,
        "acknowledged": c.acknowledged,
        "poisoned": sum(c.poisoned.values()),
        "duplicates": c.duplicates,
        "refused": sum(c.refused.values()),
        "large_bytes_uploaded": p.bytes_uploaded if p is not None else 0,
        "large_bytes_received": p.bytes_received if p is not None else 0,
        "large_bytes_in_progress": p.bytes_in_progress if p is not None else 0,
        "large_transfers_resumed": p.transfers_resumed if p is not None else 0,
    }


def stats_json(engine: QueueManager, large: LargeMessages | None) -> dict[str, int | str]:
    """The figures by their REST names (``sendQueue``...), as ``GET /v1/stats`` answers them."""
    values = stat_values(engine, large)
    return {f.json_name: values[f.name] for f in STATS}
