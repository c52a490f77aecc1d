"""Deliveries refused from peers: each counted exactly (``goq_deliveries_refused_total``), logged in aggregate.

A peer can send many refusable envelopes cheaply; a line per refusal once made one batch write 34 MB of
log. The log says what was refused and how often, at most one line per reason per ``interval``.
"""

import logging
import time
from collections.abc import Callable
from typing import Final

from goq.access import FORBIDDEN
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.peer_identity import IDENTITY_MISMATCH
from goq.sidecar.domain.throttling import ThrottledLog
from goq.signing import BAD_SIGNATURE

FIRST = "refused a delivery ({kind}): {detail}"
MORE = "refused {count} more deliveries ({kind}) in the last {seconds:.0f}s; the last: {detail}"
INTERVAL = 10.0
"""Seconds between two log lines about refusals of one reason."""


class Refusals:
    """Counts and logs the refusals of one sidecar's inbound side, by reason."""

    def __init__(
        self,
        counters: Counters,
        logger: logging.Logger,
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counters = counters
        self.log = ThrottledLog(logger, FIRST, MORE, interval=interval, clock=clock)

    def refuse(self, reason: str, detail: str, n: int = 1) -> None:
        """``n`` deliveries refused for ``reason`` (one event for the log: ``detail`` says what it was)."""
        self.counters.count_refused(reason, n)
        self.log.event(reason, detail)

    def close(self) -> None:
        """Log the refusals held back for a summary now: the sidecar is stopping."""
        self.log.close()


REJECTED: Final = "rejected"
"""The poison reason of a message refused for a kind this sidecar does not know (a newer receiver's)."""
REFUSAL_KINDS: Final = frozenset(
    {
        BAD_SIGNATURE,
        "malformed",
        "wrong-destination",
        "expired",
        "clock-skew",
        "too-large",
        FORBIDDEN,
        IDENTITY_MISMATCH,
    }
)
"""What a receiver gives as the reason of an ``OUTCOME_REJECTED`` (``<kind>: <detail>``): a new kind goes here."""


def poison_reason(refusal: str) -> str:
    """The reason a sender poisons a refused message with: the receiver's kind, the text before the first
    colon, when it is one of ``REFUSAL_KINDS``; else ``rejected``. A known set, so that a receiver cannot
    make up poison reasons (and labels of ``goq_messages_poisoned_total``)."""
    kind = refusal.partition(":")[0].strip()
    return kind if kind in REFUSAL_KINDS else REJECTED
