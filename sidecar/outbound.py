"""Outbound delivery: a lane per destination, batches over peer links, retry with backoff, poison.

A lane keeps its destination's messages in order: those due now, and those waiting for a retry
time. It sends what is due in batches (by count and bytes), each batch to one ready replica of the
destination: a ``PeerLink`` per replica, the batch going to the link with the fewest messages
outstanding (ties: the one chosen least recently), up to each link's window at a time. Replicas are
found again every ``resolve_every`` seconds and after a link fails, so new ones get work within
seconds and gone ones get no more; a link that failed gets no new batch for a while (longer after
each failure in a row) unless no other replica is up. Answers decide each message's fate: forgotten
(stored by the receiver), retried at the time ``goq.retry.after_failure`` says (on whichever replica
is then least busy), or poisoned with the reason.
"""

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from goq.api.v1 import peer_pb2
from goq.errors import TemporaryError
from goq.identity import Address
from goq.retry import RetryPolicy
from goq.sidecar.attempts import attempt_failed
from goq.sidecar.backlog import Backlog, SpillStore, WindowConfig
from goq.sidecar.counting import Counters
from goq.sidecar.histograms import Histograms
from goq.sidecar.inbound import STILL_STORING
from goq.sidecar.peer_tls import PLAINTEXT, PeerCredentials
from goq.sidecar.peering import PeerLink, PeerUnavailableError
from goq.sidecar.poison import reasons as poisons
from goq.sidecar.poisoning import Poisoner
from goq.sidecar.records import Outgoing, PoisonRecord
from goq.sidecar.resolving import Resolver
from goq.sidecar.stores.base import OutboxStore
from goq.sidecar.tracing import Tracing
from goq.signing import Keyring, NoKeyError

log = logging.getLogger("goq.sidecar.outbound")

DELIVERED: Final = (peer_pb2.OUTCOME_ACCEPTED, peer_pb2.OUTCOME_DUPLICATE, peer_pb2.OUTCOME_POISONED)
POISON_RETRY: Final = 5.0
"""Seconds before poisoning is tried again when the poison sink failed."""
RESOLVE_PAUSE: Final = 0.25
"""Seconds between the attempts that resolve a withdrawn message's unknown outcome (see ``not_stored``)."""
LINK_PAUSE: Final = 1.0
"""Seconds a replica whose link failed gets no new batch while another is up; doubled per failure in a row."""
LINK_PAUSE_MAX: Final = 15.0


@dataclass
class OutboundConfig:
    """How outbound delivery batches; see ``SidecarSettings`` for the meaning of each."""

    max_batch: int = 256
    max_batch_bytes: int = 1024 * 1024
    window: int = 8
    max_message_bytes: int = 4 * 1024 * 1024
    resolve_every: float = 3.0
    """Seconds after which a lane with messages to send asks its resolver again for the destination's replicas."""
    settle_timeout: float = 10.0
    """Seconds a failed write goes on asking whether an early delivery whose outcome is unknown was stored by
    the receiver, and (plus ``attemptTimeout``) waits for each answer: the store timeout, which bounds the
    receiver's write (see ``Outbound.not_stored``)."""
    credentials: PeerCredentials = PLAINTEXT
    """Mutual TLS or plaintext to the receivers' peer ports (``goq.sidecar.peer_tls``)."""


class Outbound:
    """All lanes of one sidecar, and the count of messages it still has to deliver."""

    def __init__(
        self,
        owner: Address,
        policy: Callable[[], RetryPolicy],
        resolver: Resolver,
        stores: dict[bool, OutboxStore],
        poisoner: Poisoner,
        counters: Counters,
        config: OutboundConfig,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        histograms: Histograms | None = None,
        spill_store: SpillStore | None = None,
        window: WindowConfig | None = None,
        tracing: Tracing | None = None,
        keyring: Callable[[], Keyring] | None = None,
    ) -> None:
        self.owner = owner
        self.tracing = tracing
        self.keyring = keyring
        """Signs, before an attempt, what was accepted unsigned or kept signed under the other key layout."""
        self.policy = policy
        self.resolver = resolver
        self.stores = stores
        self.poisoner = poisoner
        self.counters = counters
        self.config = config
        self.clock = clock
        self.rand = rand
        self.histograms = histograms
        self.lanes: dict[Address, Lane] = {}
        self.holding: set[str] = set()
        """Ids of the messages held in memory for delivery."""
        self.backlog = (
            Backlog(spill_store, window or WindowConfig(), self._resident, self.enqueue) if spill_store else None
        )
        """Persistent messages beyond each destination's memory window wait in the store (none without one)."""
        self._closing = False
        self._unstored: set[str] = set()
        """Ids of persistent messages being delivered while their store write is still on its way."""
        self._settled: set[str] = set()
        """Those of ``_unstored`` already delivered or poisoned: their ``forget`` waits for the write."""
        self._withdrawn: set[str] = set()
        """Those of ``_unstored`` whose write failed: never tried again (see ``not_stored``)."""
        self._unknown: set[str] = set()
        """Those of ``_unstored`` whose last attempt has no known outcome: the receiver may have stored them."""
        self._storing_in_order = 0
        """Persistent sends being stored that are delivered only once stored: later sends wait their turn."""

    @property
    def pending(self) -> int:
        """Messages still to deliver, held or waiting in the store: what the send queue's bound counts."""
        return len(self.holding) + self.waiting

    @property
    def waiting(self) -> int:
        """Persistent messages that wait in the store only, beyond their destination's memory window."""
        return self.backlog.total if self.backlog else 0

    def enqueue(self, items: list[Outgoing]) -> None:
        """Take responsibility for ``items`` (already stored if persistent) and deliver them."""
        items = [m for m in items if m.id not in self.holding]
        self.holding.update(m.id for m in items)
        for item in items:
            lane = self.lanes.get(item.destination)
            if lane is None:
                lane = self.lanes[item.destination] = Lane(self, item.destination)
            lane.resident += 1
            lane.resident_bytes += item.size
            lane.push(item)

    def storing(self, persistent: list[Outgoing], *, deliver_now: bool) -> list[Outgoing]:
        """Before storing persistent messages: place them (some may wait in the store only, see ``Backlog``)
        and start delivering those that need not wait for their write; returns those.

        Why: the sender's majority write and the receiver's are each a journal flush; made one after the
        other they were most of a persistent message's latency. Delivery starts at once for messages whose
        ids this sidecar made (no earlier send can have stored or delivered them), held in memory, when no
        earlier send is still being stored: the destination still gets each sender's messages in order.
        ``Send`` still answers only once the message is durable, and the store forgets a delivered message
        only after its write returned (see ``stored``, and ``not_stored`` for a write that fails). Without
        ``deliver_now`` (no store that could keep them), every message waits for its write.
        """
        if self.backlog:
            self.backlog.place(persistent)
        if not deliver_now or self._storing_in_order or not all(m.generated and not m.spill for m in persistent):
            self._storing_in_order += 1
            return []
        if self.backlog:
            self.backlog.held(persistent)  # counted in their lane from now on, not twice
        self._unstored.update(m.id for m in persistent)
        self.enqueue(persistent)
        return persistent

    def stored(self, items: list[Outgoing], fresh: list[bool], early: list[Outgoing] | None = None) -> None:
        """After storing (``fresh``: per item, new): hold and deliver what is not to wait in the store;
        ``early``: what ``storing`` started delivering already."""
        if early:
            self._written(early)
            return
        persistent = any(m.persistent for m in items)
        held = self.backlog.stored(items, fresh) if self.backlog and persistent else items
        if persistent:
            self._storing_in_order -= 1
        self.enqueue(held)

    async def not_stored(self, items: list[Outgoing], early: list[Outgoing]) -> tuple[set[str], set[str]]:
        """Storing ``items`` failed: forget their places and stop delivering them. Returns the ids of those
        delivered (or poisoned) meanwhile, stored by the receiver, so accepted all the same; and the ids of
        those whose delivery's outcome stayed unknown (not to be refused: they may still arrive).

        Waits for the answers to batches in flight. A message whose last attempt has no known outcome (no
        answer within ``attemptTimeout``, a broken stream, or the receiver's "an earlier delivery is still
        being stored") may be stored by the receiver after all, its write slowed by the same fault: it is
        sent again (``_resolve``) until the receiver answers for it. Delivered, duplicate or poisoned: it
        is accepted. Rejected, or to be retried later for any other reason (the receiver's write returned
        and failed, and withdraws what it wrote; or it was never made): not stored, refused. No such
        answer (the receiver unreachable, or still storing, for ``settle_timeout``; or an answer to the
        last try slower than ``settle_timeout`` plus ``attemptTimeout``): the message may still arrive, so
        it must not be refused, nor accepted while kept nowhere durable: the caller writes it again
        (``QueueManager._store_again``). A try given up on can store it later: its write may wait at the
        receiver behind another one (issue 16, replica-set seed 7: refused, then delivered)."""
        if not early:
            if self.backlog:
                self.backlog.abandon(items)
            self._storing_in_order -= 1
            return set(), set()
        ids = {m.id for m in early}
        self._withdrawn |= ids
        lanes = {lane for m in early if (lane := self.lanes.get(m.destination)) is not None}
        for lane in lanes:
            self._let_go(lane.withdraw(ids))
        answers = [task for lane in lanes for task in lane.completions]
        try:
            if answers:
                await asyncio.wait(answers)
            unknown = [m for m in early if m.id in self._unknown and m.id not in self._settled]
            unresolved = await self._resolve(unknown) if unknown else set()
            settled = ids & self._settled
        finally:  # also when the send is cancelled while it waits (its client gave up): nothing is left behind
            self._let_go(early)  # whatever was in flight and not delivered is not held either
            self._settled -= ids
            self._unstored -= ids
            self._withdrawn -= ids
            self._unknown -= ids
        return settled, unresolved

    async def _resolve(self, items: list[Outgoing]) -> set[str]:
        """Send withdrawn ``items`` again until the receiver answers for each (see ``not_stored``); those
        delivered are recorded as delivered. Returns the ids still without an answer.

        Each try may make the receiver start a write of its own (its earlier one failed), so each try's
        answer is awaited as long as such a write may take (``settle_timeout`` plus ``attemptTimeout``),
        never abandoned after ``attemptTimeout``: a try given up on could store the message later. Tries
        answered "still being stored" (that answer starts no write) or that reach no receiver are repeated
        for up to ``settle_timeout`` after the receiver last answered "still being stored": that answer
        means a write of the message is in flight there, and it may land however long it has taken so far
        (queued behind other writes, each bounded by the store timeout, so more than one store timeout in
        all), so giving up on it would refuse a message that is then delivered (issue 16, seed 101)."""
        patience = self.config.settle_timeout + self.policy().attempt_timeout
        ask_until = self.clock() + self.config.settle_timeout
        pending = items
        while pending:
            batches = self._batches(pending)
            answers = await asyncio.gather(*(self.lanes[b[0].destination].probe(b, patience) for b in batches))
            still = []
            storing = False
            for batch, results in zip(batches, answers, strict=True):
                if results is None:
                    still += batch
                    continue
                answered = list(zip(batch, results, strict=True))
                if delivered := [m for m, r in answered if r.outcome in DELIVERED]:
                    self.delivered(delivered)
                unknown = [m for m, r in answered if _outcome_unknown(r)]
                storing = storing or bool(unknown)
                still += unknown
            pending = still
            if storing:  # a write of theirs is in flight at the receiver: it ends, then it answers for them
                ask_until = max(ask_until, self.clock() + self.config.settle_timeout)
            if not pending or self._closing or self.clock() + RESOLVE_PAUSE >= ask_until:
                break
            await asyncio.sleep(RESOLVE_PAUSE)
        if pending:
            log.warning(
                "%d message(s) whose write failed may still reach their destination: no answer for them within %.0f s",
                len(pending),
                self.config.settle_timeout,
                extra={"source": str(self.owner), "ids": [m.id for m in pending[:20]]},
            )
        return {m.id for m in pending}

    def _batches(self, items: list[Outgoing]) -> list[list[Outgoing]]:
        """``items`` per destination, in batches of at most ``max_batch`` messages and ``max_batch_bytes``."""
        batches: list[list[Outgoing]] = []
        last: dict[Address, tuple[list[Outgoing], int]] = {}
        for item in items:
            batch, size = last.get(item.destination, ([], 0))
            if not batch or len(batch) >= self.config.max_batch or size + item.size > self.config.max_batch_bytes:
                batch, size = [], 0
                batches.append(batch)
            batch.append(item)
            last[item.destination] = (batch, size + item.size)
        return batches

    def not_stored_nowait(self, items: list[Outgoing], early: list[Outgoing]) -> None:
        """The send was cancelled while storing: its outcome unknown, what was delivering goes on."""
        if early:
            self._written(early)
            return
        if self.backlog:
            self.backlog.abandon(items)
        self._storing_in_order -= 1

    def _written(self, early: list[Outgoing]) -> None:
        """The write of messages delivered early returned: forget in the store those already delivered, and
        record the attempts that failed meanwhile (the write carried none)."""
        ids = {m.id for m in early}
        self._unstored -= ids
        self._unknown -= ids
        settled = [m for m in early if m.id in self._settled]
        if settled:
            self._settled.difference_update(m.id for m in settled)
            self.stores[True].forget([m.id for m in settled])
        failed = [m for m in early if m.failed_attempts and m.id in self.holding]
        if failed:
            self.stores[True].record_failures(failed)

    def _resident(self, destination: Address) -> tuple[int, int]:
        lane = self.lanes.get(destination)
        return (lane.resident, lane.resident_bytes) if lane else (0, 0)

    def _let_go(self, items: list[Outgoing]) -> None:
        """``items`` are no longer this sidecar's to deliver: free their room in memory."""
        destinations = set()
        for item in items:
            if item.id in self.holding:
                self.holding.discard(item.id)
                lane = self.lanes[item.destination]
                lane.resident -= 1
                lane.resident_bytes -= item.size
                destinations.add(item.destination)
        if self.backlog:
            for destination in destinations:
                self.backlog.kick(destination)

    def in_flight(self) -> int:
        return sum(lane.in_flight for lane in self.lanes.values())

    async def close(self, grace: float) -> None:
        """Stop sending new batches, let answers in flight arrive for up to ``grace`` seconds, close links."""
        self._closing = True
        if self.backlog:
            await self.backlog.close()
        for lane in self.lanes.values():
            lane.stop()
        answers = [task for lane in self.lanes.values() for task in lane.completions]
        if answers:
            await asyncio.wait(answers, timeout=grace)
        for lane in self.lanes.values():
            await lane.close()
        transient = sum(1 for lane in self.lanes.values() for m in lane.queued() if not m.persistent)
        self.counters.lost_transient += transient
        if transient:
            log.warning("shutting down with %d transient message(s) undelivered: they are lost", transient)

    # What the lanes report back.

    def delivered(self, items: list[Outgoing]) -> None:
        if log.isEnabledFor(logging.DEBUG):
            for m in items:
                log.debug(
                    "delivered %s",
                    m.id,
                    extra={"id": m.id, "source": str(self.owner), "destination": str(m.destination)},
                )
        if self.tracing is not None:
            self.tracing.attempted(items, "delivered")
        self._let_go(items)
        self.counters.delivered += len(items)
        if self.histograms is not None:
            self.histograms.delivered_after([m.failed_attempts + 1 for m in items])
        self._forget(items)

    async def failed(self, lane: "Lane", items: list[Outgoing], error: str, *, unknown: bool | None = None) -> None:
        """A failed attempt for each of ``items``: schedule a retry, or poison what ran out of budget.
        ``unknown``: True if the receiver may have stored them (no answer, a broken stream, still storing),
        False if it answered that it did not; None if the attempt never reached it (nothing learned)."""
        if self.tracing is not None:
            self.tracing.attempted(items, "failed", error)
        policy, now = self.policy(), self.clock()
        if self._unstored and unknown is not None:  # see ``not_stored``
            early = [m.id for m in items if m.id in self._unstored]
            if unknown:
                self._unknown.update(early)
            else:
                self._unknown.difference_update(early)
        retry: list[Outgoing] = []
        give_up: list[tuple[Outgoing, PoisonRecord]] = []
        self.counters.attempts_failed += len(items)
        log.info(
            "delivery of %d message(s) to %s failed: %s",
            len(items),
            lane.destination,
            error,
            extra={"source": str(self.owner), "destination": str(lane.destination), "ids": [m.id for m in items[:20]]},
        )
        owner = str(self.owner)
        for item in items:
            record = attempt_failed(owner, item, policy, error, now, self.rand())
            if record is None:
                retry.append(item)
            else:
                give_up.append((item, record))
        if self._withdrawn:  # their write failed: not accepted, not tried again
            retry = [m for m in retry if m.id not in self._withdrawn]
            give_up = [g for g in give_up if g[0].id not in self._withdrawn]
        for item in retry:
            lane.push(item)
        self.stores[True].record_failures([m for m in retry if m.persistent and m.id not in self._unstored])
        await self.poison(lane, give_up)

    async def poison(self, lane: "Lane", items: list[tuple[Outgoing, PoisonRecord]]) -> None:
        """Move ``items`` (message, its record from ``goq.sidecar.poison.reasons``) to the poison queue;
        keep any the sink refused."""
        if not items:
            return
        if self.tracing is not None:
            for m, record in items:
                self.tracing.attempted([m], "rejected", record.detail)
        if await self.poisoner.poison([record for _, record in items]):
            self._let_go([m for m, _ in items])
            self._forget([m for m, _ in items])
            return
        now = self.clock()
        for item, _ in items:
            if item.id not in self._withdrawn:
                item.next_at = now + POISON_RETRY
                lane.push(item)

    def _forget(self, items: list[Outgoing]) -> None:
        for persistent in (True, False):
            ids = [m.id for m in items if m.persistent is persistent]
            if persistent and self._unstored:  # delivered before its write returned: forget it after
                self._settled.update(i for i in ids if i in self._unstored)
                ids = [i for i in ids if i not in self._unstored]
            if ids:
                self.stores[persistent].forget(ids)


class Lane:
    """One destination's messages, in order, and the task that delivers them over a link per replica."""

    def __init__(self, outbound: Outbound, destination: Address) -> None:
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
        a probe asks first (see ``Outbound.not_stored``): its write of the message may still be in flight."""
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
            # batches in flight (``Outbound.not_stored``) must see it while the write waits for the stream.
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
            try:
                answer = await written
                results = await asyncio.wait_for(answer, self.outbound.policy().attempt_timeout)
            except TimeoutError:
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
        now = self.outbound.clock()
        for item, result in zip(batch, results, strict=True):
            if result.outcome in DELIVERED:
                delivered.append(item)
            elif result.outcome == peer_pb2.OUTCOME_REJECTED:
                rejected.append((item, poisons.refused(str(self.outbound.owner), item, result.reason, now)))
            else:
                retry.append((item, result.reason or "peer asked to retry later"))
        self.outbound.delivered(delivered)
        for reason in {r for _, r in retry}:
            items = [m for m, r in retry if r == reason]
            await self.outbound.failed(self, items, reason, unknown=reason == STILL_STORING)
        await self.outbound.poison(self, rejected)

    async def probe(self, batch: list[Outgoing], patience: float) -> list[peer_pb2.MessageResult] | None:
        """One attempt at ``batch`` outside this lane's queue (see ``Outbound.not_stored``): the receivers'
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
        unstored = self.outbound._unstored
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


def _outcome_unknown(result: peer_pb2.MessageResult) -> bool:
    """Whether an answer leaves open that the receiver stores the message: its earlier delivery's write is
    still in flight there."""
    return result.outcome == peer_pb2.OUTCOME_RETRY_LATER and result.reason == STILL_STORING


def _delivery(batch: list[Outgoing]) -> peer_pb2.DeliverBatch:
    """The batch's envelopes, filled in place: building each on its own and copying it in cost half as much again."""
    delivery = peer_pb2.DeliverBatch()
    add = delivery.messages.add
    for m in batch:
        add(body=m.body, key_id=m.key_id, signature=m.signature, attempt=m.failed_attempts + 1)
    return delivery
