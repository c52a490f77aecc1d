"""A lane: one destination's messages in order, sent in batches to its ready replicas over peer links.

A lane keeps its destination's messages in order: those due now, and those waiting for a retry
time. It sends what is due in batches (by count and bytes), each batch to one ready replica of the
destination: a ``PeerLink`` per replica, the batch going to the link with the fewest messages
outstanding (ties: the one chosen least recently), up to each link's window at a time. Replicas are
found again every ``resolve_every`` seconds and after a link fails, so new ones get work within
seconds and gone ones get no more; a link that failed gets no new batch for a while (longer after
each failure in a row) unless no other replica is up. What an answer means for each message is the
rule of ``goq.sidecar.domain.attempts`` (``answered``, as for large messages); ``Outbound`` acts on it
(``delivered``, ``failed``, ``poison``).
"""

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Final

from goq.api.v1 import peer_pb2
from goq.errors import TemporaryError
from goq.identity import Address
from goq.sidecar.adapters.peering import PeerLink, PeerUnavailableError
from goq.sidecar.domain.attempts import STILL_STORING, answered
from goq.sidecar.domain.records import Outgoing, PoisonRecord
from goq.signing import NoKeyError

if TYPE_CHECKING:
    from goq.sidecar.core.outbound import Outbound

log = logging.getLogger("goq.sidecar.outbound")

LINK_PAUSE: Final = 1.0
"""Seconds a replica whose link failed gets no new batch while another is up; doubled per failure in a row."""
LINK_PAUSE_MAX: Final = 15.0


class Lane:
    """One destination's messages, in order, and the task that delivers them over a link per replica."""

    def __init__(self, outbound: "Outbound", destination: Address) -> None:
        self.outbound = outbound
        self.destination = destination
        self.ready: deque[Outgoing] = deque()
        self.waiting: list[tuple[float, int, Outgoing]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._stopped = False
        self.links: dict[str, PeerLink] = {}
        """A link per ready replica of the destination, by ``host:port``, as last resolved."""
        self._retiring: set[PeerLink] = set()
        """Links to replicas no longer resolved, closed once their batches in flight are answered."""
        self._down: dict[str, tuple[float, int]] = {}
        """Per target whose link failed: until when it gets no new batch, and its failures in a row."""
        self._resolved_at = -math.inf
        self._refreshing: asyncio.Task[None] | None = None
        self._choices = itertools.count(1)
        self._tried_on: dict[str, str] = {}
        """For messages delivered before their write returned: the replica their last attempt went to, which
        a probe asks first (see ``Admission.not_stored``): its write of the message may still be in flight."""
        self._closing: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.resident = 0
        """Messages for this destination held in memory (queued, waiting for a retry or in flight)."""
        self.resident_bytes = 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"lane {destination}")
        self.completions: set[asyncio.Task[None]] = set()

    def push(self, item: Outgoing) -> None:
        if item.next_at <= self.outbound.clock():
            self.ready.append(item)
        else:
            heapq.heappush(self.waiting, (item.next_at, next(self._order), item))
        self._wake.set()

    def queued(self) -> list[Outgoing]:
        return [*self.ready, *(m for _, _, m in self.waiting)]

    def withdraw(self, ids: set[str]) -> list[Outgoing]:
        """Take the messages ``ids`` out of this lane's queue (not those in flight); returns them."""
        taken = [m for m in self.ready if m.id in ids] + [m for _, _, m in self.waiting if m.id in ids]
        if taken:
            self.ready = deque(m for m in self.ready if m.id not in ids)
            self.waiting = [entry for entry in self.waiting if entry[2].id not in ids]
            heapq.heapify(self.waiting)
        return taken

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def stopped(self) -> bool:
        return self._stopped

    async def close(self) -> None:
        self._task.cancel()
        if self._refreshing is not None:
            self._refreshing.cancel()
        for task in list(self.completions):
            task.cancel()
        await asyncio.gather(self._task, *self.completions, *filter(None, [self._refreshing]), return_exceptions=True)
        for link in [*self.links.values(), *self._retiring]:
            await link.close()
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped:
            self._promote_due()
            if not self.ready:
                await self._sleep()
                continue
            try:
                link = await self._choose_link()
            except TemporaryError as exc:
                if batch := self._take_batch():
                    await self.outbound.failed(self, batch, str(exc))
                continue
            await link.slots.acquire()
            if self.stopped():
                link.slots.release()
                break
            batch = self._take_batch() if self.links.get(link.target) is link else []  # dropped meanwhile
            batch = await self._signed(batch) if batch and self.outbound.keyring else batch
            if not batch:
                link.slots.release()
                continue
            self.in_flight += len(batch)
            self._sent_on(link, batch)
            # The batch's completion is registered before it is written: whoever waits for this lane's
            # batches in flight (``Admission.not_stored``) must see it while the write waits for the stream.
            written: asyncio.Future[asyncio.Future[list[peer_pb2.MessageResult]]] = loop.create_future()
            task = loop.create_task(self._complete(link, batch, written))
            self.completions.add(task)
            task.add_done_callback(self.completions.discard)
            written.set_result(await link.send(_delivery(batch)))

    async def _signed(self, batch: list[Outgoing]) -> list[Outgoing]:
        """``batch`` with every envelope signed as its receiver verifies: a message accepted before this sidecar
        had a key for the destination's namespace, or stored under the other key layout (``GOQ_KEY_SCOPE``
        changed since), is signed now with the active key. One still without a key fails this attempt (retried
        per the RetryPolicy, poisoned naming the missing key when it gives up)."""
        assert self.outbound.keyring is not None
        keyring, here = self.outbound.keyring(), self.outbound.owner.namespace
        unsigned: dict[int, Outgoing] = {}
        error = ""
        for m in batch:
            if keyring.needs_signing(m.key_id):
                try:
                    m.key_id, m.signature = keyring.sign(m.body, m.destination.namespace or here)
                except NoKeyError as exc:
                    unsigned[id(m)], error = m, str(exc)
        if not unsigned:
            return batch
        await self.outbound.failed(self, list(unsigned.values()), error)
        return [m for m in batch if id(m) not in unsigned]

    async def _complete(
        self,
        link: PeerLink,
        batch: list[Outgoing],
        written: "asyncio.Future[asyncio.Future[list[peer_pb2.MessageResult]]]",
    ) -> None:
        try:
            patience = self.outbound.policy().attempt_timeout
            try:
                answer = await written
                results = await asyncio.wait_for(answer, patience)
            except TimeoutError:
                if link.silent(patience):  # the stream answers nothing: it may be dead; a new one is tried
                    link.reset("no answer within attemptTimeout")
                self._failing(link)
                error = f"{link.target}: no answer within attemptTimeout"
                await self.outbound.failed(self, batch, error, unknown=True)
                return
            except PeerUnavailableError as exc:  # the stream broke: the batch may have been read
                self._failing(link)
                await self.outbound.failed(self, batch, str(exc), unknown=True)
                return
            self._down.pop(link.target, None)
            await self._settle(batch, results)
        finally:
            self.in_flight -= len(batch)
            self._answered(link, len(batch))

    async def _settle(self, batch: list[Outgoing], results: list[peer_pb2.MessageResult]) -> None:
        if len(results) != len(batch):
            error = f"peer answered {len(results)} results for {len(batch)} messages"
            await self.outbound.failed(self, batch, error, unknown=True)
            return
        delivered: list[Outgoing] = []
        retry: list[tuple[Outgoing, str]] = []
        rejected: list[tuple[Outgoing, PoisonRecord]] = []
        owner, now = str(self.outbound.owner), self.outbound.clock()
        for item, result in zip(batch, results, strict=True):
            verdict = answered(owner, item, result, now)
            if verdict.delivered:
                delivered.append(item)
            elif verdict.refused is not None:
                rejected.append((item, verdict.refused))
            else:
                retry.append((item, verdict.retry))
        self.outbound.delivered(delivered)
        for reason in {r for _, r in retry}:
            items = [m for m, r in retry if r == reason]
            await self.outbound.failed(self, items, reason, unknown=reason == STILL_STORING)
        await self.outbound.poison(self, rejected)

    async def probe(self, batch: list[Outgoing], patience: float) -> list[peer_pb2.MessageResult] | None:
        """One attempt at ``batch`` outside this lane's queue (see ``Admission.not_stored``): the receivers'
        answers, or None if any part got none within ``patience`` seconds or its stream broke. Each message
        goes to the replica its last attempt went to while that one is resolved (its write of the message
        may still be in flight there), the others to the least busy."""
        parts: dict[PeerLink, list[int]] = {}
        for index, item in enumerate(batch):
            link = self.links.get(self._tried_on.get(item.id, ""))
            if link is None:
                try:
                    link = await self._choose_link()
                except TemporaryError:
                    return None
            parts.setdefault(link, []).append(index)
        answers = await asyncio.gather(
            *(self._ask(link, [batch[i] for i in at], patience) for link, at in parts.items())
        )
        results: list[peer_pb2.MessageResult | None] = [None] * len(batch)
        for at, answer in zip(parts.values(), answers, strict=True):
            if answer is None:
                return None
            for index, result in zip(at, answer, strict=True):
                results[index] = result
        return [r for r in results if r is not None]

    async def _ask(self, link: PeerLink, batch: list[Outgoing], patience: float) -> list[peer_pb2.MessageResult] | None:
        await link.slots.acquire()
        self._sent_on(link, batch)
        try:
            answer = await link.send(_delivery(batch))
            results = await asyncio.wait_for(answer, patience)
        except TimeoutError:
            link.reset(f"no answer within {patience:.0f} s")
            self._failing(link)
            return None
        except TemporaryError:
            self._failing(link)
            return None
        finally:
            self._answered(link, len(batch))
        return results if len(results) == len(batch) else None

    def _promote_due(self) -> None:
        now = self.outbound.clock()
        while self.waiting and self.waiting[0][0] <= now:
            self.ready.append(heapq.heappop(self.waiting)[2])

    async def _sleep(self) -> None:
        self._wake.clear()
        timeout = max(0.0, self.waiting[0][0] - self.outbound.clock()) if self.waiting else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    def _take_batch(self) -> list[Outgoing]:
        config = self.outbound.config
        batch: list[Outgoing] = []
        size = 0
        while self.ready and len(batch) < config.max_batch:
            if batch and size + self.ready[0].size > config.max_batch_bytes:
                break
            item = self.ready.popleft()
            batch.append(item)
            size += item.size
        return batch

    # Which replica gets a batch.

    async def _choose_link(self) -> PeerLink:
        """The link to the replica with the fewest messages outstanding (ties: the least recently chosen),
        skipping those paused after a failure while another is up. Resolves the replicas first if none is
        known, and again in the background when ``resolve_every`` has passed or a link failed."""
        if not self.links:
            await self._refresh()
        elif self._refreshing is None and time.monotonic() >= self._resolved_at + self.outbound.config.resolve_every:
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh_quietly())
        now = time.monotonic()
        links = list(self.links.values())
        up = [link for link in links if self._down.get(link.target, (0.0, 0))[0] <= now] or links
        link = min(up, key=lambda link: (link.outstanding, link.chosen))
        link.chosen = next(self._choices)
        return link

    async def _refresh(self) -> None:
        """Ask the resolver for the destination's replicas: a link for each new one, none for those gone."""
        try:
            targets = await self.outbound.resolver.targets(self.destination)
        finally:
            self._resolved_at = time.monotonic()
        config = self.outbound.config
        for target in targets:
            if target not in self.links:
                self.links[target] = PeerLink(
                    target,
                    window=config.window,
                    max_message_bytes=config.max_message_bytes,
                    destination=self.destination,
                    credentials=config.credentials,
                )
                log.info(
                    "delivering to %s at %s too", self.destination, target, extra={"destination": str(self.destination)}
                )
        for target in [t for t in self.links if t not in targets]:
            link = self.links.pop(target)
            self._down.pop(target, None)
            log.info(
                "no longer delivering to %s at %s",
                self.destination,
                target,
                extra={"destination": str(self.destination)},
            )
            self._retiring.add(link)
            self._answered(link, 0)

    async def _refresh_quietly(self) -> None:
        """A background ``_refresh``: on failure the replicas known stay (their links say if they are gone)."""
        try:
            await self._refresh()
        except TemporaryError as exc:
            log.debug("resolving %s again failed: %s", self.destination, exc)
        finally:
            self._refreshing = None

    def _failing(self, link: PeerLink) -> None:
        """``link`` failed: no new batch for it for a while, and the replicas are resolved again soon."""
        now = time.monotonic()
        until, failures = self._down.get(link.target, (0.0, 0))
        if until > now:  # the same fault (a broken stream fails all its batches): counted once
            return
        pause = min(LINK_PAUSE * 2**failures, LINK_PAUSE_MAX)
        self._down[link.target] = (now + pause, failures + 1)
        self._resolved_at = -math.inf

    def _sent_on(self, link: PeerLink, batch: list[Outgoing]) -> None:
        link.outstanding += len(batch)
        if self.outbound.tracing is not None:
            self.outbound.tracing.attempting(batch, link.target)
        unstored = self.outbound.admission.unstored
        if not unstored:
            return
        self._tried_on.update((m.id, link.target) for m in batch if m.id in unstored)
        if len(self._tried_on) > 2 * len(unstored) + 256:  # drop those whose write has returned
            self._tried_on = {i: t for i, t in self._tried_on.items() if i in unstored}

    def _answered(self, link: PeerLink, count: int) -> None:
        """``count`` messages sent on ``link`` were answered (or failed): its room is free again. A link no
        longer resolved is closed once nothing it carries waits for an answer."""
        if count:
            link.outstanding -= count
            link.slots.release()
        if link in self._retiring and link.outstanding == 0:
            self._retiring.discard(link)
            task = asyncio.get_running_loop().create_task(link.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)


def _delivery(batch: list[Outgoing]) -> peer_pb2.DeliverBatch:
    """The batch's envelopes, filled in place: building each on its own and copying it in cost half as much again."""
    delivery = peer_pb2.DeliverBatch()
    add = delivery.messages.add
    for m in batch:
        add(body=m.body, key_id=m.key_id, signature=m.signature, attempt=m.failed_attempts + 1)
    return delivery
