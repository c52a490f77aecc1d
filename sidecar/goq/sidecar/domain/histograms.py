"""Distributions the sidecar observes per message: delivery latency and attempts (Prometheus histograms).

Filled a batch at a time by the event loop, in plain counters: prometheus_client's ``Histogram`` takes a
lock and walks its buckets for every value, about 0.55 us per message in each sidecar. The exposition
is the same histogram (``_bucket``, ``_count``, ``_sum``), without the optional ``_created`` series.
"""

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 50, 100)


class Distribution:
    """Counts per bucket (a value goes to the first bound it does not exceed, as Prometheus's ``le``) and a sum."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = [float(b) for b in bounds]
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe_many(self, values: Iterable[float]) -> None:
        counts, bounds = self.counts, self.bounds
        total = 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1
            total += value
        self.sum += total

    def family(self, name: str, documentation: str, identity: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=["identity"])
        cumulative, buckets = 0, []
        for bound, count in zip([*map(floatToGoString, self.bounds), "+Inf"], self.counts, strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        family.add_metric([identity], buckets, self.sum)
        return family


class Histograms(Collector):
    """One sidecar's histograms, in its own registry (no process-global state)."""

    def __init__(self, identity: str, registry: CollectorRegistry | None = None) -> None:
        self.identity = identity
        self._latency = Distribution(LATENCY_BUCKETS)
        self._attempts = Distribution(ATTEMPT_BUCKETS)
        if registry is not None:
            registry.register(self)

    def delivered_after(self, attempts: list[int]) -> None:
        self._attempts.observe_many(attempts)

    def received_after(self, seconds: list[float]) -> None:
        self._latency.observe_many(s if s > 0.0 else 0.0 for s in seconds)  # clocks of two pods may disagree

    def collect(self) -> Iterator[HistogramMetricFamily]:
        yield self._latency.family(
            "goq_delivery_latency_seconds",
            "From acceptance by the sending sidecar to storage by this (receiving) sidecar.",
            self.identity,
        )
        yield self._attempts.family(
            "goq_delivery_attempts",
            "Attempts a delivered message took (1 when the first attempt succeeded).",
            self.identity,
        )
