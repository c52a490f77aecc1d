"""A poison sink that writes one structured log line per message (no payload) and keeps nothing."""

import json
import logging

from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.ports.poison import SinkContext
from goq.sink_options import POISON, check_sink

log = logging.getLogger("goq.poison")


class LogPoisonSink:
    """Logs poisoned messages' metadata at WARNING; for setups that collect logs and want no store."""

    def __init__(self, context: SinkContext) -> None:
        check_sink(POISON, "log", context.options)

    async def put(self, records: list[PoisonRecord]) -> None:
        for r in records:
            fields = {
                "event": "poisoned",
                "id": r.id,
                "owner": r.owner,
                "direction": r.direction,
                "peer": r.peer,
                "reason": r.reason,
                "detail": r.detail,
                "attempts": r.attempts,
                "bytes": len(r.body),
            }
            log.warning(json.dumps(fields))

    async def close(self) -> None:
        return None


def create(context: SinkContext) -> LogPoisonSink:
    """Entry point ``log`` of ``goq.poison_sinks``."""
    return LogPoisonSink(context)
