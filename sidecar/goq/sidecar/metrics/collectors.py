"""Prometheus metrics: ``goq_*`` read from the engine's figures, and the process's own, at scrape time."""

from collections.abc import Callable, Iterator

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from goq.sidecar.core.engine import QueueManager
from goq.sidecar.large.service import LargeMessages


class EngineCollector(Collector):
    """Exposes the queue manager's counters and depths, labelled with the identity."""

    def __init__(self, engine: QueueManager, large: LargeMessages | None = None) -> None:
        self.engine = engine
        self.large = large

    def collect(self) -> Iterator[Metric]:
        stats = self.engine.stats()
        c = stats.counters
        identity = stats.identity
        totals = [
            ("goq_messages_sent", "Messages accepted from the application.", c.sent),
            ("goq_messages_delivered", "Messages stored by the destination's sidecar.", c.delivered),
            (
                "goq_delivery_attempts_failed",
                "Delivery attempts that failed and were retried or gave up.",
                c.attempts_failed,
            ),
            ("goq_messages_received", "Messages accepted from other sidecars.", c.received),
            ("goq_messages_acknowledged", "Messages the application acknowledged.", c.acknowledged),
            ("goq_messages_redelivered", "Messages handed to the application again.", c.redelivered),
            ("goq_messages_duplicate", "Deliveries recognised as already received.", c.duplicates),
            (
                "goq_deliveries_deferred_while_storing",
                "Repeated deliveries that came while the first one's store write had not returned (they wait for it).",
                c.repeats_while_storing,
            ),
            ("goq_transient_messages_lost", "Transient messages dropped at shutdown.", c.lost_transient),
        ]
        for name, documentation, value in totals:
            family = CounterMetricFamily(name, documentation, labels=["identity"])
            family.add_metric([identity], value)
            yield family
        poisoned = CounterMetricFamily(
            "goq_messages_poisoned", "Messages moved to the poison queue.", labels=["identity", "reason"]
        )
        for reason, value in sorted(c.poisoned.items()):
            poisoned.add_metric([identity, reason], value)
        yield poisoned
        refused = CounterMetricFamily(
            "goq_deliveries_refused",
            "Deliveries refused from peers, by reason (envelopes; requests that did not decode: undecodable).",
            labels=["identity", "reason"],
        )
        for reason, value in sorted(c.refused.items()):
            refused.add_metric([identity, reason], value)
        yield refused
        sink_failures = CounterMetricFamily(
            "goq_poison_sink_failures",
            "Times the poison sink failed to keep messages (they were kept and retried).",
            labels=["identity"],
        )
        sink_failures.add_metric([identity], self.engine.poisoner.failures)
        yield sink_failures
        for name, documentation, value in [
            ("goq_send_queue_messages", "Messages waiting to be delivered.", stats.send_queue),
            (
                "goq_send_queue_stored_only_messages",
                "Persistent messages to deliver that wait in MongoDB only, beyond their destination's memory window.",
                self.engine.outbound.waiting,
            ),
            ("goq_receive_queue_messages", "Messages held for the application.", stats.receive_queue),
            ("goq_leased_messages", "Messages handed to the application and not yet acknowledged.", stats.in_flight),
        ]:
            gauge = GaugeMetricFamily(name, documentation, labels=["identity"])
            gauge.add_metric([identity], value)
            yield gauge
        if self.large is not None:
            yield from large_metrics(self.large, identity)


def large_metrics(large: LargeMessages, identity: str) -> Iterator[Metric]:
    """Progress of large messages: bytes so far, bytes being received, resumed transfers, spill use."""
    p = large.progress
    for name, documentation, value in [
        ("goq_large_bytes_uploaded", "Payload bytes of large messages taken from the application.", p.bytes_uploaded),
        ("goq_large_bytes_sent", "Body bytes of large messages sent to peers.", p.bytes_sent),
        ("goq_large_bytes_received", "Body bytes of large messages received from peers.", p.bytes_received),
        ("goq_large_transfers_resumed", "Large transfers from peers resumed after a break.", p.transfers_resumed),
    ]:
        family = CounterMetricFamily(name, documentation, labels=["identity"])
        family.add_metric([identity], value)
        yield family
    for name, documentation, value in [
        ("goq_large_bytes_in_progress", "Body bytes held of large messages being received now.", p.bytes_in_progress),
        ("goq_spill_bytes", "Bytes of transient large bodies in the spill area.", large.spill.used),
    ]:
        gauge = GaugeMetricFamily(name, documentation, labels=["identity"])
        gauge.add_metric([identity], value)
        yield gauge


class KeyRingCollector(Collector):
    """``goq_key_ring_reloads_total``: how often a changed key Secret was put in force without a restart."""

    def __init__(self, identity: str, reloads: Callable[[], int]) -> None:
        self.identity = identity
        self.reloads = reloads

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "goq_key_ring_reloads",
            "Changed HMAC key rings loaded from GOQ_KEYS_DIR while running.",
            labels=["identity"],
        )
        family.add_metric([self.identity], self.reloads())
        yield family


def register_process_collectors(registry: CollectorRegistry) -> None:
    """``process_*`` (memory, CPU, open files), ``python_info`` and ``python_gc_*``, as every Python exporter
    has them. All are read at scrape time: nothing runs between scrapes (idle RSS: docs/sidecar.md, Metrics)."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
