"""The sidecar's settings from its GoQueue and the RetryPolicy it names, followed without a restart.

``QueueSettingsWatcher`` yields the settings once at start and again whenever the GoQueue or a
RetryPolicy in the namespace changes (watches, resumed from the last resourceVersion and restarted
after errors). Settings that fail validation never replace good ones: the last good settings stay in
force and the problem is logged (the operator's webhook normally refuses such objects anyway).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from goq import names
from goq.errors import ConfigError, TemporaryError
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.sidecar.adapters.kube.api import KubeApi, KubeApiError
from goq.sidecar.adapters.kube.connecting import custom_objects

log = logging.getLogger("goq.sidecar.kube")
INJECTION_ONLY_FIELD: Final = "sidecar"
"""``spec.sidecar`` (image, resources) is read by the webhook at injection time, not by the engine."""
WATCH_SECONDS: Final = 240
"""Server-side watch timeout; the watch is renewed from its last resourceVersion."""


@dataclass(frozen=True)
class QueueSettings:
    """What the engine obeys: the GoQueue's spec and its RetryPolicy (built-in defaults when missing)."""

    spec: GoQueueSpec
    retry: RetryPolicy
    goqueue_found: bool = True
    retry_policy_found: bool = True


class QueueSettingsWatcher:
    """Reads and follows one identity's settings. Iterate it: ``async for settings in watcher: ...``."""

    def __init__(self, api: KubeApi, namespace: str, identity: str, *, retry_delay: float = 2.0) -> None:
        self._api = api
        self.namespace = namespace
        self.identity = identity
        self.retry_delay = retry_delay
        self._changed = asyncio.Event()

    async def _get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return await self._api.get(custom_objects(self.namespace, plural, name))
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise TemporaryError(f"reading {plural} {self.namespace}/{name}: {exc.status} {exc.reason}") from exc

    async def read(self) -> QueueSettings:
        """The settings now; ConfigError if the GoQueue or RetryPolicy is invalid."""
        goqueue = await self._get(names.GOQUEUE_PLURAL, self.identity)
        raw = dict((goqueue or {}).get("spec") or {})
        raw.pop(INJECTION_ONLY_FIELD, None)  # the image and resources the webhook injected: not the engine's
        spec = GoQueueSpec.from_spec(raw, f"GoQueue {self.identity} spec")
        if spec.retry_policy is None:
            return QueueSettings(spec, RetryPolicy(), goqueue is not None)
        policy = await self._get(names.RETRYPOLICY_PLURAL, spec.retry_policy)
        if policy is None:
            log.warning("RetryPolicy %s not found; using the built-in defaults until it exists", spec.retry_policy)
            return QueueSettings(spec, RetryPolicy(), goqueue is not None, retry_policy_found=False)
        retry = RetryPolicy.from_spec(policy.get("spec"), f"RetryPolicy {spec.retry_policy} spec")
        return QueueSettings(spec, retry, goqueue is not None)

    async def _follow(self, plural: str, field_selector: str | None) -> None:
        """Set ``_changed`` on every event of ``plural`` in the namespace, forever."""
        version: str | None = None
        path = custom_objects(self.namespace, plural)
        selector = {"fieldSelector": field_selector} if field_selector else {}
        while True:
            try:
                if version is None:
                    listed = await self._api.get(path, selector)
                    version = listed["metadata"]["resourceVersion"]
                    self._changed.set()  # something may have changed while we were not watching
                params = {**selector, "resourceVersion": version, "timeoutSeconds": str(WATCH_SECONDS)}
                async for event in self._api.watch(path, params):
                    if event["type"] == "ERROR":  # e.g. 410 Gone: list again
                        version = None
                        break
                    version = event["object"]["metadata"]["resourceVersion"]
                    self._changed.set()
            except KubeApiError as exc:
                if exc.status == 410:
                    version = None
                    continue
                log.warning("watching %s failed (%s); retrying", plural, exc)
                version = None
                await asyncio.sleep(self.retry_delay)

    async def __aiter__(self) -> AsyncIterator[QueueSettings]:
        """The settings at start, then each time they change (never the same settings twice in a row).

        Invalid settings at start give the built-in defaults (logged); later they are ignored."""
        tasks = [
            asyncio.create_task(self._follow(names.GOQUEUE_PLURAL, f"metadata.name={self.identity}")),
            asyncio.create_task(self._follow(names.RETRYPOLICY_PLURAL, None)),
        ]
        last: QueueSettings | None = None
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                try:
                    current = await self.read()
                except ConfigError as exc:
                    if last is not None:
                        log.error("keeping the current settings: %s", exc)
                        continue
                    log.error("starting with the built-in defaults: %s", exc)
                    current = QueueSettings(GoQueueSpec(), RetryPolicy())
                except TemporaryError as exc:
                    log.warning("%s; trying again", exc)
                    await asyncio.sleep(self.retry_delay)
                    self._changed.set()
                    continue
                if current != last:
                    last = current
                    yield current
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
