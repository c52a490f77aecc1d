"""Outbound delivery: a lane per destination, batches over peer links, retry with backoff, poison.

``Outbound`` holds what this sidecar still has to deliver and gives each message to its destination's
``Lane`` (``goq.sidecar.core.lane``: batches, each to the least busy ready replica). Answers decide each
message's fate: forgotten (stored by the receiver), retried at the time ``goq.retry.after_failure`` says
(on whichever replica is then least busy), or poisoned with the reason.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from goq.api.v1 import peer_pb2
from goq.identity import Address
from goq.retry import RetryPolicy
from goq.sidecar.adapters.peer_tls import PLAINTEXT, PeerCredentials
from goq.sidecar.adapters.resolving import Resolver
from goq.sidecar.core.backlog import Backlog, SpillStore, WindowConfig
from goq.sidecar.core.inbound import STILL_STORING
from goq.sidecar.core.lane import DELIVERED, Lane
from goq.sidecar.core.tracing import Tracing
from goq.sidecar.domain.attempts import attempt_failed
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.histograms import Histograms
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Outgoing, PoisonRecord
from goq.sidecar.ports.stores import OutboxStore
from goq.signing import Keyring

log = logging.getLogger("goq.sidecar.outbound")

POISON_RETRY: Final = 5.0
"""Seconds before poisoning is tried again when the poison sink failed."""
RESOLVE_PAUSE: Final = 0.25
"""Seconds between the attempts that resolve a withdrawn message's unknown outcome (see ``not_stored``)."""


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
    """Mutual TLS or plaintext to the receivers' peer ports (``goq.sidecar.adapters.peer_tls``)."""


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
        """Move ``items`` (message, its record from ``goq.sidecar.domain.poison_reasons``) to the poison queue;
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


def _outcome_unknown(result: peer_pb2.MessageResult) -> bool:
    """Whether an answer leaves open that the receiver stores the message: its earlier delivery's write is
    still in flight there."""
    return result.outcome == peer_pb2.OUTCOME_RETRY_LATER and result.reason == STILL_STORING
