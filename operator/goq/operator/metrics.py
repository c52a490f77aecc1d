"""The operator's Prometheus metrics, served by the admission server at ``/metrics``.

The process's own series (``process_*``, ``python_*``) as every Python exporter has them, the admission
answers by outcome, and whether this replica leads (``goq_operator_leader``). All are read at scrape time from
a registry of the operator's own (not prometheus_client's global one, which importing a library could fill).
"""

from collections import Counter
from collections.abc import Iterator

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from goq.operator.leadership import LeaderStatus


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


class LeaderCollector(Collector):
    """``goq_operator_leader`` (1 on the replica holding the leader Lease, 0 on the others) and
    ``goq_operator_leader_changes_total{change}`` (``gained``, ``lost``): which replica leads, and flapping."""

    def __init__(self, status: LeaderStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "goq_operator_leader",
            "1 if this replica holds the leader Lease (registers the webhooks, reconciles, sweeps), else 0.",
            value=1 if self.status.leading else 0,
        )
        changes = CounterMetricFamily(
            "goq_operator_leader_changes",
            "Times this replica began (gained) or stopped (lost) leading; lost includes a release on stopping.",
            labels=["change"],
        )
        for change in ("gained", "lost"):
            changes.add_metric([change], self.status.changes[change])
        yield changes


def operator_registry(outcomes: Counter[str]) -> CollectorRegistry:
    """A registry with the process, platform and garbage-collector collectors and the admission counts."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(AdmissionCollector(outcomes))
    return registry
