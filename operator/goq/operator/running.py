"""The operator process: admission server, webhook registration, kopf handlers and the sweeper.

The sweeper is the level-triggered half: every ``sweep_interval`` it reconciles every GoQueue (stale
pods, pods gone, pods not injected, Service, key ring and certificate repairs), renews what is due (key
rotation, the webhook and identity certificates) and removes the certificates of deleted GoQueues. kopf
is the event-triggered half, for quick reactions.

Several replicas may run: each serves the admission webhook (with the certificate the Secret holds), on a
thread and event loop of its own (``goq.operator.admission_thread``) that nothing here can delay, and only the
holder of the leader Lease (``goq.operator.leadership``) registers the webhooks, sweeps and runs kopf, so that
no two replicas reconcile, issue or rotate at once.
"""

import asyncio
import contextlib
import logging
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final, cast

import kopf
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.errors import GoQError
from goq.operator import identity_tls, keys, registration
from goq.operator.admission import AdmissionServer, Mutator, Validator
from goq.operator.admission_thread import AdmissionThread
from goq.operator.handlers import build_registry
from goq.operator.identity_tls import Issuer
from goq.operator.kube import call, connect, custom
from goq.operator.leadership import Leadership, LeadershipLostError, replica_identity
from goq.operator.metrics import LeaderCollector
from goq.operator.provisioning import NamespaceProvider
from goq.operator.reconciling import namespace_terminating, reconcile, view_namespace
from goq.operator.settings import OperatorSettings
from goq.operator.sidecar_specs import SidecarSpecLookup, SidecarSpecs

log = logging.getLogger("goq.operator")
WEBHOOK_CHECK_INTERVAL: Final = 3600.0
"""How often the webhook certificate's expiry and the registrations are checked."""

MutatorFactory = Callable[[str, str, SidecarSpecLookup], Mutator]
"""(server major and minor version, GoQueue sidecar overrides) -> the pod mutator for that server."""


async def issuer_for(api: k8s.ApiClient, settings: OperatorSettings) -> Issuer | None:
    """The identity CA, made or rotated when due; ``None`` when peer TLS is off (``GOQ_PEER_TLS=false``)."""
    if not settings.tls.enabled:
        return None
    return Issuer(await identity_tls.ensure_authority(api, settings), settings.tls)


async def sweep_once(api: k8s.ApiClient, settings: OperatorSettings, specs: SidecarSpecs | None = None) -> int:
    """Reconcile every GoQueue once; return how many failed (each is logged, none stops the others)."""
    key_data = await keys.ensure_master(api, settings)
    issuer = await issuer_for(api, settings)
    listed = await call(
        "listing GoQueues",
        custom(api).list_cluster_custom_object(names.GROUP, names.VERSION, names.GOQUEUE_PLURAL),
    )
    if specs is not None:
        specs.replace_all(listed.get("items", []))
    by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for goqueue in listed.get("items", []):
        if not goqueue["metadata"].get("deletionTimestamp"):
            by_namespace[goqueue["metadata"]["namespace"]].append(goqueue)
    failed = 0
    for namespace, goqueues in sorted(by_namespace.items()):
        try:
            view = await view_namespace(api, namespace, key_data)
        except ApiException as exc:
            if not namespace_terminating(exc):
                failed += len(goqueues)
                log.warning("namespace %s skipped in this sweep: %s %s", namespace, exc.status, exc.reason)
            continue
        except GoQError as exc:
            failed += len(goqueues)
            log.warning("namespace %s skipped in this sweep: %s", namespace, exc)
            continue
        for goqueue in goqueues:
            try:
                await reconcile(api, goqueue, key_data, settings.stale_after, view, issuer)
            except GoQError as exc:
                failed += 1
                log.warning("%s", exc)
    if issuer is not None:
        try:  # the certificates of deleted GoQueues leave their namespace's Secret
            await identity_tls.remove_deleted(api, listed.get("items", []))
        except GoQError as exc:
            log.warning("certificates of deleted GoQueues not removed in this sweep: %s", exc)
    return failed


async def _sweep_forever(
    api: k8s.ApiClient,
    settings: OperatorSettings,
    server: AdmissionServer,
    specs: SidecarSpecs,
    provider: NamespaceProvider,
) -> None:
    last_webhook_check = time.monotonic()
    while True:
        await asyncio.sleep(settings.sweep_interval)
        try:
            await sweep_once(api, settings, specs)
            await provider.sweep()
            if time.monotonic() - last_webhook_check > WEBHOOK_CHECK_INTERVAL:
                await registration.ensure_webhook(api, settings, server)
                last_webhook_check = time.monotonic()
        except GoQError as exc:
            log.warning("sweep failed, trying again in %.0f s: %s", settings.sweep_interval, exc)


async def refresh_specs(api: k8s.ApiClient, specs: SidecarSpecs) -> None:
    """Every GoQueue's ``spec.sidecar`` into ``specs`` (what the pod webhook injects for each identity)."""
    listed = await call(
        "listing GoQueues",
        custom(api).list_cluster_custom_object(names.GROUP, names.VERSION, names.GOQUEUE_PLURAL),
    )
    specs.replace_all(listed.get("items", []))


async def _follow(
    api: k8s.ApiClient, settings: OperatorSettings, server: AdmissionServer, specs: SidecarSpecs, served: bytes
) -> None:
    """Every replica, leader or not, every sweep interval: what its webhook needs to answer as the leader would.

    The GoQueues' sidecar overrides (the leader also learns them from kopf at once; a follower within an
    interval), and the webhook certificate the Secret holds (the leader renews it; the caBundle it registers
    trusts the old and the new, so a replica still serving the old one meanwhile is trusted)."""
    while True:
        await asyncio.sleep(settings.sweep_interval)
        try:
            await refresh_specs(api, specs)
            cert = await registration.served_certificate(api, settings)
        except GoQError as exc:
            log.warning(
                "could not refresh what the webhook serves, trying again in %.0f s: %s", settings.sweep_interval, exc
            )
            continue
        if cert is not None and cert.cert != served:
            registration.load_into(server, cert)
            served = cert.cert
            log.info("serving the webhook certificate from Secret %s", settings.webhook.tls_secret)


async def _lead(
    api: k8s.ApiClient,
    settings: OperatorSettings,
    server: AdmissionServer,
    specs: SidecarSpecs,
    leadership: Leadership,
    stop: asyncio.Event,
) -> None:
    """The leader's work: register the webhooks, sweep, and run kopf, until ``stop`` or the Lease is lost."""
    halt = asyncio.Event()  # kopf's stop flag: the process is stopping, or the Lease was lost
    holding = asyncio.create_task(leadership.hold(), name="goq-lease")
    holding.add_done_callback(lambda _: halt.set())
    stopping = asyncio.create_task(stop.wait(), name="goq-stop")
    stopping.add_done_callback(lambda _: halt.set())
    sweeper: asyncio.Task[None] | None = None
    try:
        await registration.ensure_webhook(api, settings, server)
        await sweep_once(api, settings, specs)  # keys made, sidecar overrides known before pods arrive

        async def reconcile_one(goqueue: dict[str, Any]) -> None:
            specs.update(goqueue)
            key_data = await keys.ensure_master(api, settings)
            await reconcile(api, goqueue, key_data, settings.stale_after, issuer=await issuer_for(api, settings))

        provider = NamespaceProvider(api, settings)
        sweeper = asyncio.create_task(_sweep_forever(api, settings, server, specs, provider), name="goq-sweeper")
        if not halt.is_set():
            await kopf.operator(
                registry=build_registry(api, reconcile_one, provider),
                clusterwide=True,
                standalone=True,  # one handler per resource is the Lease's job, not kopf's peering
                stop_flag=halt,
            )
    finally:
        for task in (sweeper, stopping, holding):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeadershipLostError):
                    await task
    if holding.done() and not holding.cancelled() and isinstance(holding.exception(), LeadershipLostError):
        raise cast(LeadershipLostError, holding.exception())


async def run(
    settings: OperatorSettings,
    mutator_for: MutatorFactory,
    validator: Validator,
    stop: asyncio.Event | None = None,
    namespace_validator: Validator | None = None,
) -> None:
    """Run the operator until ``stop`` is set or the process is signalled (SIGTERM, SIGINT).

    Every replica serves the admission webhook from the moment it starts, on its own thread, before and
    whatever the leadership; the one that holds the Lease (``goq.operator.leadership``) also registers the
    webhooks, sweeps and runs the kopf handlers. A leader that loses the Lease raises ``LeadershipLostError``
    (the process exits and is restarted as a follower). ``namespace_validator`` checks namespaces whose
    ``goq.io/injection`` label the registration sends (``registration.validating_configuration``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # kopf installs its own while it runs, on the leader
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    async with connect() as api:
        version = await call("reading the server version", k8s.VersionApi(api).get_code())
        log.info("Kubernetes %s", version.git_version)
        specs = SidecarSpecs()
        mutator = mutator_for(version.major, version.minor, specs.get)
        server = AdmissionServer(mutator, validator, namespace_validator)
        cert = await registration.current_certificate(api, settings)  # made by whichever replica comes first
        registration.load_into(server, cert)
        await refresh_specs(api, specs)  # a follower too injects each GoQueue's sidecar overrides from the start
        leadership = Leadership(api, settings.namespace, settings.leader, replica_identity())
        server.registry.register(LeaderCollector(leadership.status))  # goq_operator_leader at /metrics
        admission = AdmissionThread(server)
        await asyncio.to_thread(admission.start, settings.webhook.host, settings.webhook.port)  # before it leads
        reloader = asyncio.create_task(_follow(api, settings, server, specs, cert.cert), name="goq-follow")
        try:
            if await leadership.acquire(stop):
                try:
                    await _lead(api, settings, server, specs, leadership, stop)
                finally:
                    await leadership.release()
        finally:
            reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reloader
            admission.drain()  # reviews in flight or sent on a kept-alive connection still get their answer
            await asyncio.sleep(settings.webhook.drain)
            await asyncio.to_thread(admission.stop)
