"""The sidecar process: build the parts from settings (``wiring``), serve, and shut down in order on SIGTERM.

Start: stores and recovery, then the peer, application and health servers; ready after that.
Stop: not ready; stop accepting from the application and from peers; let deliveries in flight get
their answers (``GOQ_SHUTDOWN_GRACE``); write what is pending; close. What is left stays in MongoDB
for the next start.
"""

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field

import grpc
from prometheus_client.registry import CollectorRegistry
from pymongo import AsyncMongoClient

from goq.api.v1 import peer_pb2_grpc, queue_manager_pb2_grpc
from goq.errors import ConfigError
from goq.freshness import within_window
from goq.queue_status import PodFigures
from goq.sidecar.adapters.keys_watching import KeyringFollower
from goq.sidecar.adapters.kube import QueueSettingsWatcher, StatusReporter, connect, heartbeat
from goq.sidecar.adapters.kube.api import KubeApi
from goq.sidecar.adapters.peer_tls import PLAINTEXT, MutualTls, PeerCredentials, peer_credentials
from goq.sidecar.adapters.peering import server_options
from goq.sidecar.apis.app_service import AppService
from goq.sidecar.apis.health import MAX_CONNECTIONS as HEALTH_CONNECTIONS
from goq.sidecar.apis.health import health_routes
from goq.sidecar.apis.http_routing import Router
from goq.sidecar.apis.http_server import MAX_CONNECTIONS, HttpServer
from goq.sidecar.apis.malformed import MalformedRequestInterceptor, TolerantServer
from goq.sidecar.apis.peer_limits import peer_server_options
from goq.sidecar.apis.peer_service import PeerService
from goq.sidecar.apis.rest_api import rest_routes
from goq.sidecar.apis.standard_services import ServingStatus, add_standard_services
from goq.sidecar.collecting import settle
from goq.sidecar.core.engine import QueueManager
from goq.sidecar.core.tracing import Tracing, tracing_from_env
from goq.sidecar.domain.histograms import Histograms
from goq.sidecar.large.memory import keep_large_buffers_off_the_heap
from goq.sidecar.large.service import LargeMessages
from goq.sidecar.metrics.collectors import EngineCollector, KeyRingCollector, register_process_collectors
from goq.sidecar.metrics.sinks.base import MetricsContext
from goq.sidecar.metrics.sinks.flushing import Flusher, load_metrics_sinks
from goq.sidecar.settings import SidecarSettings
from goq.sidecar.wiring import LiveSettings, build, build_large

log = logging.getLogger("goq.sidecar")


@dataclass
class Sidecar:
    """A running sidecar: its engine and its three servers."""

    settings: SidecarSettings
    ready: bool = False
    engine: QueueManager | None = None
    _mongo: AsyncMongoClient[dict[str, object]] | None = None
    _servers: list[grpc.aio.Server] = field(default_factory=list)
    _rest: HttpServer | None = None
    _health: HttpServer | None = None
    _kube: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _api: KubeApi | None = None
    large: LargeMessages | None = None
    keys: KeyringFollower | None = None
    tls: PeerCredentials = PLAINTEXT
    serving: ServingStatus | None = None
    """``grpc.health.v1`` on the application port, kept equal to ``ready``."""
    tracing: Tracing | None = None

    async def start(self) -> None:
        s = self.settings
        live = LiveSettings(s.queue_spec, s.retry_policy)
        if s.kubernetes:
            await self._follow_goqueue(live)
        if s.mongodb_uri:
            self._mongo = AsyncMongoClient(
                s.mongodb_uri,
                timeoutMS=int(s.store_timeout * 1000),
                serverSelectionTimeoutMS=int(s.store_timeout * 1000),
            )
        registry = CollectorRegistry()
        if s.keys_dir is not None and s.keyring is not None:
            self.keys = KeyringFollower(s.keys_dir, s.keyring)
            self._tasks.append(asyncio.get_running_loop().create_task(self.keys.run(), name="key ring"))
        keys = self.keys.current if self.keys is not None else None
        self.tls = tls = peer_credentials(s.tls_dir)
        if isinstance(tls, MutualTls):  # renewed certificates in force without a restart
            self._tasks.append(asyncio.get_running_loop().create_task(tls.run(), name="TLS certificate"))
        self.tracing = tracing = tracing_from_env(str(s.address), s.instance)
        histograms = Histograms(str(s.address), registry)
        self.engine = engine = build(s, self._mongo, live, histograms, keys, tls, tracing)
        await engine.start()
        self.large = large = build_large(s, self._mongo, live, engine)
        await large.start()
        options = server_options(max(s.max_payload, s.large_chunk, 1024 * 1024))
        refusals = engine.inbound.refusals
        undecodable = MalformedRequestInterceptor(
            lambda method, error: refusals.refuse("undecodable", f"{method}: {error}")
        )
        peer = grpc.aio.server(
            options=peer_server_options(s.max_payload, s.peer_max_connections, s.peer_max_streams),
            interceptors=[undecodable],
            maximum_concurrent_rpcs=s.peer_max_calls,
        )
        peer_pb2_grpc.add_PeerServicer_to_server(PeerService(engine.inbound, large=large.receiver), peer)
        app = TolerantServer(grpc.aio.server(options=options))  # no interceptor: a unary call costs less
        queue_manager_pb2_grpc.add_QueueManagerServicer_to_server(AppService(engine, large), app)
        self.serving = serving = await add_standard_services(app)
        for server, address, what in ((peer, s.peer_listen, "peer"), (app, s.grpc_listen, "application gRPC")):
            try:
                bound = tls.bind(server, address) if server is peer else server.add_insecure_port(address)
            except RuntimeError:  # grpcio raises where it once returned 0
                bound = 0
            if bound == 0:
                raise ConfigError(f"cannot listen on {address} for the {what} API (in use?)")
            await server.start()
            self._servers.append(server)
        registry.register(EngineCollector(engine, large))
        registry.register(KeyRingCollector(str(s.address), lambda: self.keys.reloads if self.keys else 0))
        register_process_collectors(registry)
        context = MetricsContext(str(s.address), registry=registry, mongo=self._mongo, database=s.mongodb_database)
        flusher = Flusher(
            engine, load_metrics_sinks(live.spec.metrics, context), lambda: live.spec.metrics.interval, registry
        )
        self._tasks.append(asyncio.get_running_loop().create_task(flusher.run(), name="metrics flush"))
        health = health_routes(lambda: self.ready, registry)
        self._health = await _listen(health, s.health_listen, "health", max_connections=HEALTH_CONNECTIONS)
        self._rest = await _listen(rest_routes(engine, large), s.rest_listen, "application REST")
        settle()
        self.ready = True
        await serving.follow(True)
        if self._api is not None:
            reporter = StatusReporter(self._api, s.namespace, s.identity)
            beat = heartbeat(reporter, s.instance, self.figures, s.status_interval, self._stopping)
            self._tasks.append(asyncio.get_running_loop().create_task(beat, name="status heartbeat"))
        log.info(
            "sidecar %s (instance %s) ready: peer %s, gRPC %s, REST %s, health %s, %s messages",
            s.address,
            s.instance,
            s.peer_listen,
            s.grpc_listen,
            s.rest_listen,
            s.health_listen,
            "persistent and transient" if self._mongo else "transient-only (no MongoDB)",
        )

    async def _follow_goqueue(self, live: LiveSettings) -> None:
        """Read this identity's GoQueue and RetryPolicy (waiting up to the store timeout), then follow them."""
        s = self.settings
        self._api = api = await self._kube.enter_async_context(connect(s.kubeconfig))
        first = asyncio.Event()

        async def follow() -> None:
            async for current in QueueSettingsWatcher(api, s.namespace, s.identity):
                if first.is_set():
                    log.info("GoQueue %s changed: now %s, %s", s.identity, current.spec, current.retry)
                live.spec, live.retry = current.spec, within_window(current.retry, s.dedupe_window)
                if live.retry is not current.retry:  # once per change of the policy: the watcher yields changes only
                    log.warning(
                        "retries' maxAge cut to %s: older messages are poisoned (max-age)",
                        live.retry.max_age_limit,
                    )
                first.set()

        self._tasks.append(asyncio.get_running_loop().create_task(follow(), name="settings"))
        try:
            await asyncio.wait_for(first.wait(), s.store_timeout)
        except TimeoutError:
            log.warning(
                "GoQueue %s not read in %.0f s: starting with the environment's settings", s.identity, s.store_timeout
            )

    def figures(self) -> PodFigures:
        """What the status heartbeat reports for this pod."""
        if self.engine is None:
            return PodFigures(ready=False)
        stats = self.engine.stats()
        return PodFigures(
            ready=self.ready,
            send_queue=stats.send_queue,
            receive_queue=stats.receive_queue,
            delivered=stats.counters.delivered,
            poisoned=sum(stats.counters.poisoned.values()),
        )

    async def stop(self) -> None:
        self.ready = False
        if self.serving is not None:  # gRPC health checkers and watchers hear it before the servers stop
            await self.serving.shutting_down()
        self._stopping.set()
        for server in reversed(self._servers):
            await server.stop(grace=1.0)
        if self._rest is not None:  # long polls still waiting are cut short, as gRPC's grace does
            await self._rest.close(grace=1.0)
        if self.large is not None:
            await self.large.stop()
        if self.engine is not None:
            await self.engine.stop(self.settings.shutdown_grace)
        if self._mongo is not None:
            await self._mongo.close()
        if self.tracing is not None:  # the spans still batched are exported
            await asyncio.to_thread(self.tracing.close)
        if self._health is not None:
            await self._health.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._kube.aclose()
        log.info("sidecar %s stopped", self.settings.address)


def dump_tasks() -> None:
    """Log every asyncio task's stack: ``kill -USR1 <pid>`` shows where a sidecar waits."""
    tasks = asyncio.all_tasks()
    log.warning("SIGUSR1: %d asyncio task(s)", len(tasks))
    for task in tasks:
        log.warning("%s\n%s", task.get_name(), "\n".join(_awaiting(task.get_coro())))


def _awaiting(coro: object) -> list[str]:
    """Where a task's coroutine waits, outermost first, down the chain of awaits (a frame not yet started
    has no line number)."""
    lines: list[str] = []
    while coro is not None and len(lines) < 20:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            lines.append(f"  {coro!r}")
            break
        lines.append(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return lines


async def run(settings: SidecarSettings) -> None:
    """Run until SIGTERM or SIGINT, then shut down in order. SIGUSR1 logs every task's stack."""
    keep_large_buffers_off_the_heap()
    sidecar = Sidecar(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        await sidecar.start()
        await stop.wait()
        log.info("shutting down (grace %.0f s)", settings.shutdown_grace)
    finally:
        await sidecar.stop()


async def _listen(routes: Router, address: str, what: str, max_connections: int = MAX_CONNECTIONS) -> HttpServer:
    """An HTTP server on ``address``; a port that is taken is a configuration error naming it."""
    server = HttpServer(routes, max_connections=max_connections)
    host, _, port = address.rpartition(":")
    try:
        await server.start(host, int(port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {address} for the {what} API ({exc.strerror or exc})") from exc
    return server
