"""Heartbeats into the GoQueue status: this pod's entry merged in, the totals recomputed.

Each write is a JSON merge patch of the status subresource guarded by the ``resourceVersion`` it was
computed from: entries of other pods are never overwritten, and a concurrent writer only causes a
re-read and a retry. Nothing else of the GoQueue is touched (RBAC allows nothing else).
"""

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable

from goq import names
from goq.errors import PermanentError, TemporaryError
from goq.queue_status import PodFigures, totals
from goq.sidecar.kube.api import KubeApi, KubeApiError
from goq.sidecar.kube.connecting import custom_objects

log = logging.getLogger("goq.sidecar.kube")


class StatusReporter:
    """Writes one identity's heartbeats; ``clock`` is injectable for tests."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        identity: str,
        *,
        attempts: int = 5,
        clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self._api = api
        self._status = custom_objects(namespace, names.GOQUEUE_PLURAL, identity) + "/status"
        self.namespace = namespace
        self.identity = identity
        self.attempts = attempts
        self.clock = clock

    def _where(self) -> str:
        return f"GoQueue {self.namespace}/{self.identity}"

    async def report(self, pod_name: str, figures: PodFigures) -> None:
        """Merge this pod's figures into the status; TemporaryError if it could not (try on the next beat)."""
        for _ in range(self.attempts):
            try:
                current = await self._api.get(self._status)
            except KubeApiError as exc:
                raise self._error("reading", exc) from exc
            pods = dict((current.get("status") or {}).get("pods") or {})
            pods[pod_name] = figures.to_entry(self.clock())
            patch = {
                "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                "status": {"pods": {pod_name: pods[pod_name]}, **totals(pods)},
            }
            try:
                await self._api.merge_patch(self._status, patch)
                return
            except KubeApiError as exc:
                if exc.status != 409:
                    raise self._error("patching the status of", exc) from exc
        raise TemporaryError(f"heartbeat to {self._where()} kept conflicting with other writers", delay=1.0)

    def _error(self, doing: str, exc: KubeApiError) -> TemporaryError | PermanentError:
        message = f"{doing} {self._where()}: {exc.status} {exc.reason}"
        if exc.status == 404:
            return TemporaryError(f"{message} (no GoQueue yet; the operator makes one)", delay=5.0)
        if exc.status in (401, 403):
            return PermanentError(f"{message}: bind ClusterRole goq-sidecar to this pod's ServiceAccount")
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
