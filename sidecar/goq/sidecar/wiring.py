"""Wiring: the engine and large messages built from the settings, for ``runtime``.

The one place that picks the stores and the poison sink (``MongoStore`` when there is MongoDB, memory for
transient messages) and the resolver; limits and retries follow ``LiveSettings`` as the GoQueue changes.
"""

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pymongo import AsyncMongoClient

from goq.errors import ConfigError
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.sidecar.adapters.peer_tls import PLAINTEXT, PeerCredentials
from goq.sidecar.adapters.poison.loading import load_poison_sink
from goq.sidecar.adapters.resolving import DnsResolver, Resolver, StaticResolver
from goq.sidecar.adapters.stores.absent import NoInbox, NoOutbox
from goq.sidecar.adapters.stores.memory import MemoryInbox, MemoryOutbox
from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.adapters.stores.withdrawal_journal import JOURNAL_FILE, WithdrawalJournal
from goq.sidecar.core.backlog import WindowConfig
from goq.sidecar.core.engine import QueueManager
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.core.tracing import Tracing
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.histograms import Histograms
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.large.service import LargeConfig, LargeMessages
from goq.sidecar.ports.poison import SinkContext
from goq.sidecar.ports.stores import InboxStore, OutboxStore
from goq.sidecar.settings import SidecarSettings
from goq.signing import Keyring

SPILLED_BODIES = "bodies"
"""The subdirectory of ``local_directory`` where transient large bodies spill."""


@dataclass
class LiveSettings:
    """The GoQueue spec and RetryPolicy in force now: from the environment, or followed in Kubernetes."""

    spec: GoQueueSpec
    retry: RetryPolicy


def build(
    settings: SidecarSettings,
    mongo: AsyncMongoClient[dict[str, object]] | None,
    live: LiveSettings,
    histograms: Histograms | None = None,
    keys: Callable[[], Keyring] | None = None,
    credentials: PeerCredentials = PLAINTEXT,
    tracing: Tracing | None = None,
) -> QueueManager:
    """Wire the engine's parts as ``settings`` say; limits and retries follow ``live`` as it changes, the
    key ring follows ``keys`` (by default: the ring read at start), peers are reached with ``credentials``,
    and spans go to ``tracing`` (none: no tracing)."""
    if settings.keyring is None:
        raise ConfigError("no HMAC keys: set GOQ_KEYS_DIR (a mounted key Secret) or GOQ_HMAC_KEYS")
    started_with = settings.keyring
    keyring = keys or (lambda: started_with)
    me, counters = settings.address, Counters()
    store: MongoStore | None = None
    persistent_outbox: OutboxStore = NoOutbox()
    persistent_inbox: InboxStore = NoInbox()
    if mongo is not None:
        store = MongoStore(
            mongo,
            settings.mongodb_database,
            str(me),
            settings.instance,
            dedupe_window=settings.dedupe_window,
            stale_after=settings.adopt_after,
            journal=WithdrawalJournal(local_directory(settings) / JOURNAL_FILE),
        )
        persistent_outbox, persistent_inbox = store.outbox, store.inbox
    context = SinkContext(str(me), mongo=mongo, database=settings.mongodb_database)
    poisoner = Poisoner(load_poison_sink(live.spec.poison_queue, context), counters)
    resolver: Resolver = (
        StaticResolver.parse(settings.peers, settings.namespace)
        if settings.resolver == "static"
        else DnsResolver(settings.cluster_domain, server=settings.dns_server)
    )
    outboxes: dict[bool, OutboxStore] = {True: persistent_outbox, False: MemoryOutbox()}
    inboxes: dict[bool, InboxStore] = {True: persistent_inbox, False: MemoryInbox(settings.dedupe_window)}
    outbound = Outbound(
        me,
        lambda: live.retry,
        resolver,
        outboxes,
        poisoner,
        counters,
        OutboundConfig(
            max_batch=settings.batch_max,
            window=settings.window,
            max_message_bytes=settings.max_payload,
            settle_timeout=settings.store_timeout,
            credentials=credentials,
        ),
        histograms=histograms,
        spill_store=store.outbox if store else None,
        window=WindowConfig(settings.lane_window, settings.lane_window_bytes),
        tracing=tracing,
        keyring=keyring,
    )
    inbound = Inbound(
        me,
        keyring,
        lambda: live.spec,
        inboxes,
        poisoner,
        counters,
        InboundConfig(
            lease=settings.lease, max_deliveries=settings.max_deliveries, dedupe_window=settings.dedupe_window
        ),
        histograms=histograms,
    )
    return QueueManager(
        me,
        keyring,
        lambda: live.spec,
        outbound,
        inbound,
        outboxes,
        inboxes,
        poisoner,
        counters,
        max_payload=settings.max_payload,
        store=store,
        heartbeat=settings.heartbeat,
        tracing=tracing,
    )


def local_directory(settings: SidecarSettings) -> Path:
    """The sidecar's own directory: ``GOQ_SPILL_DIR`` (in a pod an ``emptyDir``, which outlives a restart of
    the container), or one in the system's temporary area. It holds the spilled transient bodies and the
    journal of pending withdrawals."""
    s = settings
    return s.spill_dir or Path(tempfile.gettempdir()) / f"goq-spill-{s.identity}-{s.instance}"


def build_large(
    settings: SidecarSettings,
    mongo: AsyncMongoClient[dict[str, object]] | None,
    live: LiveSettings,
    engine: QueueManager,
) -> LargeMessages:
    """Large messages beside the engine: bodies in GridFS (persistent) or the spill area (transient), traced
    as the engine's messages are."""
    s = settings
    spill = local_directory(s) / SPILLED_BODIES  # emptied at start: the journal beside it must stay
    return LargeMessages(
        s.address,
        engine.keyring,
        lambda: live.spec,
        lambda: live.retry,
        engine.inbound,
        engine.outbound.resolver,
        engine.poisoner,
        engine.counters,
        LargeConfig(
            chunk_size=s.large_chunk,
            spill_dir=spill,
            spill_limit=s.spill_limit,
            credentials=engine.outbound.config.credentials,
        ),
        mongo.get_database(s.mongodb_database) if mongo is not None else None,
        tracing=engine.tracing,
    )
