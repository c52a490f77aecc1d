"""Keys remembered for a while and up to a count: what the transient inbox de-duplicates with, and what the
inbound queue remembers of messages its application consumed. Neither a store nor part of one: both use it."""

import time
from collections import OrderedDict
from typing import Final

EXPIRY_INTERVAL: Final = 0.5
"""Seconds between sweeps of expired keys: a key may be remembered this much longer than its window."""


class RecentKeys:
    """Keys remembered for ``window`` seconds, and at most ``limit`` of them (oldest dropped first)."""

    def __init__(self, window: float, limit: int) -> None:
        self.window = window
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._next_expiry = 0.0

    def add(self, key: str) -> bool:
        """Remember ``key``; False if it was already remembered."""
        self._expire()
        if key in self._seen:
            return False
        self._seen[key] = time.monotonic() + self.window
        if len(self._seen) > self.limit:
            self._seen.popitem(last=False)
        return True

    def discard(self, key: str) -> None:
        self._seen.pop(key, None)

    def __contains__(self, key: str) -> bool:
        self._expire()
        return key in self._seen

    def _expire(self) -> None:
        now = time.monotonic()
        if now < self._next_expiry:  # at most every EXPIRY_INTERVAL: this runs on every lookup
            return
        self._next_expiry = now + EXPIRY_INTERVAL
        while self._seen:
            until = next(iter(self._seen.values()))
            if until > now:
                break
            self._seen.popitem(last=False)
