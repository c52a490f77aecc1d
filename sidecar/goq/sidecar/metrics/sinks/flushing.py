"""Flushing the sidecar's figures to its metrics sinks on the GoQueue's interval."""

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter
from prometheus_client.registry import CollectorRegistry

from goq.queue_spec import MetricsSpec
from goq.sidecar.adapters.plugins.loading import load_plugin
from goq.sidecar.core.engine import QueueManager
from goq.sidecar.metrics.sinks.base import GROUP, MetricsContext, MetricsSink, Snapshot

log = logging.getLogger("goq.metrics")


def load_metrics_sinks(spec: MetricsSpec, context: MetricsContext) -> dict[str, MetricsSink]:
    """Create every sink the GoQueue names; fail at start naming a missing or misconfigured one."""
    sinks = {}
    for sink in spec.sinks:
        options = MetricsContext(
            context.identity, dict(sink.options), context.registry, context.mongo, context.database
        )
        sinks[sink.type] = load_plugin(GROUP, "metrics sink", sink.type, options)
    return sinks


class Flusher:
    """Every ``interval()`` seconds, hand a snapshot to each sink; a failing sink is logged and counted."""

    def __init__(
        self,
        engine: QueueManager,
        sinks: dict[str, MetricsSink],
        interval: Callable[[], float],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.engine = engine
        self.sinks = sinks
        self.interval = interval
        self._failures = Counter(
            "goq_metrics_sink_failures", "Flushes a metrics sink failed.", ["sink"], registry=registry
        )

    async def flush_once(self) -> None:
        snapshot = Snapshot.of(self.engine.stats(), time.time())
        for name, sink in self.sinks.items():
            try:
                await sink.flush(snapshot)
            except Exception as exc:
                self._failures.labels(name).inc()
                log.warning("metrics sink %s failed: %s", name, exc, extra={"sink": name})

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval())
            await self.flush_once()
