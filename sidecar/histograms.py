"""Distributions the sidecar observes per message: delivery latency and attempts (Prometheus histograms)."""

from prometheus_client import Histogram
from prometheus_client.registry import CollectorRegistry

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
ATTEMPT_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 50, 100)


class Histograms:
    """One sidecar's histograms, in its own registry (no process-global state)."""

    def __init__(self, identity: str, registry: CollectorRegistry | None = None) -> None:
        self.identity = identity
        self._latency = Histogram(
            "goq_delivery_latency_seconds",
            "From acceptance by the sending sidecar to storage by this (receiving) sidecar.",
            ["identity"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ).labels(identity)
        self._attempts = Histogram(
            "goq_delivery_attempts",
            "Attempts a delivered message took (1 when the first attempt succeeded).",
            ["identity"],
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        ).labels(identity)

    def delivered_after(self, attempts: list[int]) -> None:
        for n in attempts:
            self._attempts.observe(n)

    def received_after(self, seconds: list[float]) -> None:
        for s in seconds:
            self._latency.observe(max(0.0, s))
