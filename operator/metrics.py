"""The operator's Prometheus metrics, served by the admission server at ``/metrics``.

The process's own series (``process_*``, ``python_*``) as every Python exporter has them, and the
admission answers by outcome. All are read at scrape time from a registry of the operator's own (not
prometheus_client's global one, which importing a library could fill).
"""

from collections import Counter
from collections.abc import Iterator

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry


class AdmissionCollector(Collector):
    """``goq_admission_reviews_total{outcome}``: the counts the admission server keeps."""

    def __init__(self, outcomes: Counter[str]) -> None:
        self.outcomes = outcomes

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "goq_admission_reviews",
            "AdmissionReviews answered, by outcome (injected, untouched, refused, error, valid, unchanged).",
            labels=["outcome"],
        )
        for outcome, count in sorted(self.outcomes.items()):
            family.add_metric([outcome], count)
        yield family


def operator_registry(outcomes: Counter[str]) -> CollectorRegistry:
    """A registry with the process, platform and garbage-collector collectors and the admission counts."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(AdmissionCollector(outcomes))
    return registry
