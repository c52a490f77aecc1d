"""Which operator replica handles resources: a ``coordination.k8s.io`` Lease of our own.

Every replica serves the admission webhook; only the holder of the Lease (``GOQ_LEADER_LEASE``,
``goq-operator-leader`` in the operator's namespace) runs the kopf handlers and the sweeper. Why a Lease
rather than kopf's peering: kopf's peering pauses only kopf's own handlers, while GoQ's sweeper (which
reconciles every GoQueue, issues certificates and rotates keys) runs beside kopf and would need a second
signal; it also needs a cluster-wide ``KopfPeering`` CRD installed before the operator starts, and its
"highest priority wins" rule lets two replicas of equal priority both run. A Lease is one object, in
Kubernetes itself, with the client-go rules every operator author knows:

- the holder renews it every ``retry_period``; each write is guarded by resourceVersion, so of two
  replicas writing at once exactly one wins;
- another replica takes it over when it has seen the Lease unchanged for its ``leaseDurationSeconds``
  (measured on its own monotonic clock, so clock skew between nodes does not matter), or at once when the
  holder released it (holder empty) on a clean stop;
- a holder that could not renew for ``renew_deadline`` (shorter than the duration) stops handling before
  anyone may take over: ``hold`` raises ``LeadershipLostError`` and the process exits to be restarted.

A replica killed outright is replaced by another within the duration plus one retry period (15 s + 2 s
by default); a replica stopped cleanly hands over within one retry period.

Each change of this replica's part is logged on one line (``became the leader``, ``lost the leadership``,
``stepped down``) and kept in ``LeaderStatus``, which ``goq.operator.metrics`` reports at ``/metrics``.
"""

import asyncio
import contextlib
import datetime
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.errors import GoQError, TemporaryError
from goq.operator.kube import body, call, get_or_none
from goq.operator.settings import LeaderSettings

log = logging.getLogger("goq.operator")
_API_FAILURES = (GoQError, ApiException, OSError, TimeoutError, aiohttp.ClientError)
"""What one round with the API server may end in; the next round tries again."""


class LeadershipLostError(TemporaryError):
    """The Lease is held by another replica, or could not be renewed in time: stop handling resources."""


def replica_identity() -> str:
    """This replica's name in the Lease: the pod's name (``POD_NAME``, else the host name) and a random
    suffix, so that a restarted container never mistakes its predecessor's Lease for its own."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{uuid.uuid4().hex[:6]}"


def _micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderStatus:
    """This replica's part, for ``/metrics``: whether it leads now, and how often it began or stopped leading."""

    leading: bool = False
    changes: Counter[str] = field(default_factory=Counter)
    """Count by change: ``gained`` (took the Lease) and ``lost`` (lost it, or released it on a stop)."""


@dataclass
class _Observed:
    resource_version: str | None = None
    at: float = 0.0
    holder: str = ""


class Leadership:
    """Acquire, hold and release the Lease for one replica (``identity``)."""

    def __init__(
        self,
        api: k8s.ApiClient,
        namespace: str,
        settings: LeaderSettings,
        identity: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.coordination = k8s.CoordinationV1Api(api)
        self.namespace, self.settings, self.identity, self.clock = namespace, settings, identity, clock
        self.observed = _Observed()
        self.status = LeaderStatus()

    def _gained(self) -> None:
        self.status.leading = True
        self.status.changes["gained"] += 1
        log.info("became the leader (Lease %s/%s, as %s)", self.namespace, self.settings.lease, self.identity)

    def _lost(self, why: str, level: int = logging.WARNING) -> None:
        """Log and count the end of this replica's leadership, once, whatever ended it."""
        if not self.status.leading:
            return
        self.status.leading = False
        self.status.changes["lost"] += 1
        log.log(
            level,
            "%s (Lease %s/%s, as %s); this replica no longer handles resources",
            why,
            self.namespace,
            self.settings.lease,
            self.identity,
        )

    @property
    def holder(self) -> str:
        """The holder seen at the last read ("" when nobody holds it)."""
        return self.observed.holder

    async def try_acquire(self) -> bool:
        """One round: take the Lease if free or expired, renew it if ours; True if this replica holds it now."""
        name, ns = self.settings.lease, self.namespace
        lease = await get_or_none(f"reading Lease {ns}/{name}", self.coordination.read_namespaced_lease(name, ns))
        now = datetime.datetime.now(datetime.UTC)
        if lease is None:
            return await self._write(None, now, transitions=0, acquired=now)
        spec = lease.spec
        version = lease.metadata.resource_version
        if version != self.observed.resource_version:
            self.observed = _Observed(version, self.clock(), spec.holder_identity or "")
        holder = spec.holder_identity or ""
        duration = spec.lease_duration_seconds or self.settings.duration
        if holder and holder != self.identity and self.clock() - self.observed.at < duration:
            return False
        ours = holder == self.identity
        transitions = (spec.lease_transitions or 0) + (0 if ours else 1)
        acquired = spec.acquire_time if ours and spec.acquire_time else now
        return await self._write(version, now, transitions=transitions, acquired=acquired)

    async def _write(
        self, version: str | None, now: datetime.datetime, transitions: int, acquired: datetime.datetime
    ) -> bool:
        name, ns = self.settings.lease, self.namespace
        meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "goq"}}
        if version is not None:
            meta["resourceVersion"] = version
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.settings.duration)),
                "acquireTime": _micro_time(acquired),
                "renewTime": _micro_time(now),
                "leaseTransitions": transitions,
            },
        }
        try:
            if version is None:
                written = await self.coordination.create_namespaced_lease(ns, body(lease))
            else:
                written = await self.coordination.replace_namespaced_lease(name, ns, body(lease))
        except ApiException as exc:
            if exc.status == 409:  # another replica wrote first (AlreadyExists or Conflict): it holds the Lease
                return False
            raise
        self.observed = _Observed(written.metadata.resource_version, self.clock(), self.identity)
        return True

    async def _round(self) -> bool:
        """``try_acquire`` bounded in time: the API client has no timeout of its own, and a leader whose renewal
        hangs must still notice its renew deadline (a timed-out write that did land is found at the next read)."""
        return await asyncio.wait_for(self.try_acquire(), self.settings.renew_deadline / 2)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica holds the Lease (True) or ``stop`` is set (False)."""
        announced = ""
        while not stop.is_set():
            try:
                if await self._round():
                    self._gained()
                    return True
            except _API_FAILURES as exc:
                log.warning("could not read or take the Lease %s/%s: %s", self.namespace, self.settings.lease, exc)
            if self.holder and self.holder != announced:
                announced = self.holder
                log.info("standing by: %s leads; this replica serves the webhook only", self.holder)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.retry_period)
        return False

    async def hold(self) -> None:
        """Renew the Lease every retry period; raise ``LeadershipLostError`` once another holds it or it could not
        be renewed for ``renew_deadline``. Runs until cancelled."""
        renewed = self.clock()
        while True:
            await asyncio.sleep(self.settings.retry_period)
            started = self.clock()  # the renewal counts from when it was asked for, not from when it answered
            try:
                if await self._round():
                    renewed = started
                    continue
            except _API_FAILURES as exc:
                log.warning("could not renew the Lease %s/%s: %s", self.namespace, self.settings.lease, exc)
            if self.holder and self.holder != self.identity:
                self._lost(f"lost the leadership to {self.holder}")
                raise LeadershipLostError(
                    f"the Lease {self.namespace}/{self.settings.lease} is now held by {self.holder}"
                )
            if self.clock() - renewed >= self.settings.renew_deadline:
                self._lost(f"lost the leadership: the Lease was not renewed for {self.settings.renew_deadline:g} s")
                raise LeadershipLostError(
                    f"the Lease {self.namespace}/{self.settings.lease} was not renewed for "
                    f"{self.settings.renew_deadline:g} s; another replica may take it over"
                )

    async def release(self) -> None:
        """Give the Lease up on a clean stop (holder emptied), so that another replica takes over at once."""
        self._lost("stepped down: the operator is stopping", logging.INFO)
        try:
            await asyncio.wait_for(self._release(), self.settings.renew_deadline / 2)
        except _API_FAILURES as exc:  # the others take over once it expires
            log.warning("could not release the Lease %s/%s: %s", self.namespace, self.settings.lease, exc)

    async def _release(self) -> None:
        name, ns = self.settings.lease, self.namespace
        lease = await get_or_none(f"reading Lease {ns}/{name}", self.coordination.read_namespaced_lease(name, ns))
        if lease is None or lease.spec.holder_identity != self.identity:
            return
        lease_body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": lease.metadata.resource_version},
            "spec": {
                "holderIdentity": "",
                "leaseDurationSeconds": 1,
                "leaseTransitions": lease.spec.lease_transitions or 0,
            },
        }
        await call(
            f"releasing Lease {ns}/{name}", self.coordination.replace_namespaced_lease(name, ns, body(lease_body))
        )
        log.info("released the Lease %s/%s", ns, name)
