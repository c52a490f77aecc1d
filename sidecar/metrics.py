"""Prometheus metrics (``goq_*``) read from the engine's figures at scrape time."""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from goq.sidecar.engine import QueueManager


class EngineCollector(Collector):
    """Exposes the queue manager's counters and depths, labelled with the identity."""

    def __init__(self, engine: QueueManager) -> None:
        self.engine = engine

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
            "goq_deliveries_refused", "Deliveries refused (HMAC failures and malformed).", labels=["identity", "reason"]
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
