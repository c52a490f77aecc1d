"""The built-in metrics sinks: prometheus, log, mongodb, pushgateway."""

import asyncio
import datetime
import logging
from typing import Any

from prometheus_client import push_to_gateway
from pymongo import WriteConcern

from goq.errors import ConfigError
from goq.sidecar.metrics.sinks.base import MetricsContext, Snapshot
from goq.sink_options import METRICS, check_sink

log = logging.getLogger("goq.metrics")


def _options(context: MetricsContext, sink: str) -> dict[str, Any]:
    check_sink(METRICS, sink, context.options)  # the rules the operator's webhook applies too
    return context.options


class PrometheusSink:
    """Pull: Prometheus scrapes ``/metrics`` on port 7703; a flush has nothing to do."""

    def __init__(self, context: MetricsContext) -> None:
        _options(context, "prometheus")

    async def flush(self, snapshot: Snapshot) -> None:
        return None


class LogSink:
    """One structured log line per flush (``event: metrics`` with every figure as a field)."""

    def __init__(self, context: MetricsContext) -> None:
        _options(context, "log")

    async def flush(self, snapshot: Snapshot) -> None:
        log.info(
            "metrics %s",
            snapshot.identity,
            extra={"event": "metrics", "identity": snapshot.identity, **snapshot.values},
        )


class MongoSink:
    """A document per flush in the ``metrics`` collection (option ``collection``): identity, time, figures."""

    def __init__(self, context: MetricsContext) -> None:
        options = _options(context, "mongodb")
        if context.mongo is None:
            raise ConfigError("metrics sink 'mongodb' needs MongoDB: set GOQ_MONGODB_URI")
        name = str(options.get("collection", "metrics"))
        self._collection = context.mongo[context.database].get_collection(name, write_concern=WriteConcern(w=1))

    async def flush(self, snapshot: Snapshot) -> None:
        at = datetime.datetime.fromtimestamp(snapshot.at, datetime.UTC)
        await self._collection.insert_one({"identity": snapshot.identity, "at": at, **snapshot.values})


class PushgatewaySink:
    """Pushes the sidecar's whole registry to a Pushgateway (options ``url``, ``job`` default ``goq``)."""

    def __init__(self, context: MetricsContext) -> None:
        options = _options(context, "pushgateway")
        if context.registry is None:
            raise ConfigError("metrics sink 'pushgateway' needs the sidecar's metrics registry")
        self._registry = context.registry
        self._url = str(options["url"])
        self._job = str(options.get("job", "goq"))

    async def flush(self, snapshot: Snapshot) -> None:
        grouping = {"identity": snapshot.identity}
        await asyncio.to_thread(push_to_gateway, self._url, self._job, self._registry, grouping_key=grouping, timeout=5)


def prometheus(context: MetricsContext) -> PrometheusSink:
    return PrometheusSink(context)


def log_lines(context: MetricsContext) -> LogSink:
    return LogSink(context)


def mongodb(context: MetricsContext) -> MongoSink:
    return MongoSink(context)


def pushgateway(context: MetricsContext) -> PushgatewaySink:
    return PushgatewaySink(context)
