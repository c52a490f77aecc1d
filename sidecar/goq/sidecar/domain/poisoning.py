"""Handing messages to the poison sink, counted, without ever dropping one the sink did not keep."""

import logging
from typing import Final

from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.ports.poison import PoisonSink, PoisonSinkError

log = logging.getLogger("goq.sidecar.poison")

POISON_RETRY: Final = 5.0
"""Seconds before poisoning is tried again when the sink did not keep the records (small and large alike)."""


class Poisoner:
    """Puts records into the sink; says whether they are kept, so the caller keeps them otherwise."""

    def __init__(self, sink: PoisonSink, counters: Counters) -> None:
        self.sink = sink
        self.counters = counters
        self.failures = 0

    async def poison(self, records: list[PoisonRecord]) -> bool:
        """True when the sink kept every record; False (logged, counted) when the caller must retry."""
        if not records:
            return True
        try:
            await self.sink.put(records)
        except PoisonSinkError as exc:
            self.failures += 1
            log.error("poison sink failed for %d message(s), keeping them to retry: %s", len(records), exc)
            return False
        for record in records:
            self.counters.count_poisoned(record.reason)
            log.warning(
                "poisoned %s message %s (%s): %s",
                record.direction,
                record.id,
                record.reason,
                record.detail,
                extra={
                    "id": record.id,
                    "direction": record.direction,
                    "peer": record.peer,
                    "reason": record.reason,
                    "attempts": record.attempts,
                },
            )
        return True
