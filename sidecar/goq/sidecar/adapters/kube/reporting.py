"""Heartbeats: each pod's figures into its own Lease ``goq-<id>-<pod>`` (see ``goq.queue_status`` for why).

Only this pod's sidecar writes its Lease, so a beat is one merge patch that never conflicts, whatever
the number of replicas. The operator reads the Leases, sums them into the GoQueue status, folds the
counters of pods that are gone into the identity's totals, and deletes their Leases.

Counters stay cumulative per pod: the first beat of a sidecar reads the Lease an earlier sidecar of
the same pod left (a restart, a crash) and adds its counters to its own. A Lease that disappears was
folded by the operator (its pod was gone, or the GoQueue was deleted): the next beat creates a new one
from this sidecar's own figures, so nothing is counted twice.
"""

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable

from goq import names
from goq.errors import PermanentError, TemporaryError
from goq.queue_status import PodFigures, beat_patch, lease_body, lease_name
from goq.sidecar.adapters.kube.api import KubeApi, KubeApiError, Obj
from goq.sidecar.adapters.kube.connecting import custom_objects

log = logging.getLogger("goq.sidecar.kube")


def leases_path(namespace: str, name: str | None = None) -> str:
    """The API path of the namespace's Leases (one of them with ``name``)."""
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return f"{path}/{name}" if name else path


class StatusReporter:
    """Writes one identity's heartbeats (for one or more pods); ``clock`` is injectable for tests.

    ``lease_seconds`` goes into ``spec.leaseDurationSeconds``: how long a beat is good for, as a
    reader of the Lease sees it (the operator uses its own ``GOQ_STALE_AFTER``).
    """

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        identity: str,
        *,
        lease_seconds: int = 30,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._api = api
        self.namespace = namespace
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._bases: dict[str, PodFigures] = {}
        """Per pod: the counters earlier sidecars of it left in its Lease (read on the first beat)."""

    async def report(self, pod_name: str, figures: PodFigures) -> None:
        """Write this pod's figures; TemporaryError if it could not (try on the next beat)."""
        path = leases_path(self.namespace, lease_name(self.identity, pod_name))
        base = self._bases.get(pod_name)
        if base is None:
            base = await self._first_beat(pod_name, path, figures)
            if base is None:  # created with these figures
                return
        try:
            await self._api.merge_patch(path, beat_patch(figures.plus_counters(base), self.clock(), self.lease_seconds))
            return
        except KubeApiError as exc:
            if exc.status != 404:
                raise self._error("writing", path, exc) from exc
        log.info("heartbeat Lease %s was removed (folded by the operator); starting a new one", path)
        self._bases[pod_name] = PodFigures(ready=False)
        await self._create(pod_name, path, figures)

    async def _first_beat(self, pod_name: str, path: str, figures: PodFigures) -> PodFigures | None:
        """The counters an earlier sidecar of this pod left; ``None`` if there was no Lease (now created)."""
        try:
            earlier = await self._api.get(path)
        except KubeApiError as exc:
            if exc.status != 404:
                raise self._error("reading", path, exc) from exc
            self._bases[pod_name] = PodFigures(ready=False)
            if await self._create(pod_name, path, figures):
                return None
            earlier = await self._read(path)  # another writer made it in between: continue from it
        base = PodFigures.from_annotations((earlier.get("metadata") or {}).get("annotations") or {})
        self._bases[pod_name] = base
        if base.delivered or base.poisoned:
            log.info(
                "pod %s counted %d delivered, %d poisoned before this sidecar", pod_name, base.delivered, base.poisoned
            )
        return base

    async def _create(self, pod_name: str, path: str, figures: PodFigures) -> bool:
        """Create the Lease, owned by the GoQueue; False if it exists already."""
        try:
            goqueue = await self._api.get(custom_objects(self.namespace, names.GOQUEUE_PLURAL, self.identity))
        except KubeApiError as exc:
            raise self._error("reading", f"GoQueue {self.namespace}/{self.identity}", exc) from exc
        body = lease_body(self.identity, pod_name, figures, self.clock(), self.lease_seconds, goqueue)
        try:
            await self._api.create(leases_path(self.namespace), body)
        except KubeApiError as exc:
            if exc.status == 409:
                return False
            raise self._error("creating", path, exc) from exc
        return True

    async def _read(self, path: str) -> Obj:
        try:
            return await self._api.get(path)
        except KubeApiError as exc:
            raise self._error("reading", path, exc) from exc

    def _error(self, doing: str, what: str, exc: KubeApiError) -> TemporaryError | PermanentError:
        message = f"heartbeat of GoQueue {self.namespace}/{self.identity}: {doing} {what}: {exc.status} {exc.reason}"
        if exc.status == 404:
            return TemporaryError(f"{message} (no GoQueue yet; the operator makes one)", delay=5.0)
        if exc.status in (401, 403):
            return PermanentError(
                f"{message}: the pod's ServiceAccount may not write Leases; bind ClusterRole goq-sidecar to it "
                f"with a RoleBinding in namespace {self.namespace}"
            )
        return TemporaryError(message, delay=2.0)


async def heartbeat(
    reporter: StatusReporter,
    pod_name: str,
    figures: Callable[[], PodFigures],
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Report ``figures()`` every ``interval`` s until ``stop`` is set; failures are logged, not fatal."""
    while not stop.is_set():
        try:
            await reporter.report(pod_name, figures())
        except TemporaryError as exc:
            log.warning("heartbeat failed: %s", exc)
        except PermanentError as exc:
            log.error("heartbeat failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
