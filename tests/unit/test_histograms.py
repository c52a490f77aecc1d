"""The delivery histograms, filled a batch at a time, read as Prometheus histograms."""

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from goq.sidecar.domain.histograms import Histograms


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("identity") == "orders.default"
    }


def test_values_count_in_the_first_bucket_they_do_not_exceed_and_buckets_are_cumulative() -> None:
    registry = CollectorRegistry()
    Histograms("orders.default", registry).delivered_after([1, 1, 2, 3, 100, 1000])
    seen = samples(registry)
    assert seen[("goq_delivery_attempts_bucket", "1.0")] == 2
    assert seen[("goq_delivery_attempts_bucket", "2.0")] == 3
    assert seen[("goq_delivery_attempts_bucket", "3.0")] == 4
    assert seen[("goq_delivery_attempts_bucket", "100.0")] == 5
    assert seen[("goq_delivery_attempts_bucket", "+Inf")] == 6
    assert seen[("goq_delivery_attempts_count", "")] == 6
    assert seen[("goq_delivery_attempts_sum", "")] == 1107


def test_a_latency_below_zero_from_disagreeing_clocks_counts_as_zero() -> None:
    registry = CollectorRegistry()
    histograms = Histograms("orders.default", registry)
    histograms.received_after([-1.0, 0.0011])
    histograms.received_after([400.0])
    seen = samples(registry)
    assert seen[("goq_delivery_latency_seconds_bucket", "0.001")] == 1
    assert seen[("goq_delivery_latency_seconds_bucket", "0.002")] == 2
    assert seen[("goq_delivery_latency_seconds_bucket", "300.0")] == 2
    assert seen[("goq_delivery_latency_seconds_count", "")] == 3
    assert seen[("goq_delivery_latency_seconds_sum", "")] == 400.0011
