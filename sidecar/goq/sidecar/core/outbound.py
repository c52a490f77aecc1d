"""Outbound delivery: the send queue, a lane per destination, batches over peer links, retry with backoff, poison.

``Outbound`` owns a message from its send to its delivery. ``admit`` is the one way in: its ``Admission``
(``goq.sidecar.core.admission``) applies the send queue's bound, places it (held, or waiting in the store:
``core.backlog``), makes it durable and may start its delivery before that. ``Outbound`` holds what this
sidecar still has to deliver and gives each message to its destination's ``Lane`` (``core.lane``:
batches, each to the least busy ready replica). Answers decide each message's fate, by the rules of
``goq.sidecar.domain.attempts``: forgotten (stored by the receiver), retried at the time the RetryPolicy
says (on whichever replica is then least busy), or poisoned with the reason.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from goq.errors import GoQError
from goq.identity import Address
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.sidecar.adapters.peer_tls import PLAINTEXT, PeerCredentials
from goq.sidecar.adapters.resolving import Resolver
from goq.sidecar.core.admission import Admission
from goq.sidecar.core.backlog import Backlog, SpillStore, WindowConfig
from goq.sidecar.core.lane import Lane
from goq.sidecar.core.tracing import Tracing
from goq.sidecar.domain.attempts import attempts_failed
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.histograms import Histograms
from goq.sidecar.domain.poisoning import POISON_RETRY, Poisoner
from goq.sidecar.domain.receipts import SendReceipt
from goq.sidecar.domain.records import Outgoing, PoisonRecord
from goq.sidecar.ports.stores import OutboxStore
from goq.signing import Keyring

log = logging.getLogger("goq.sidecar.outbound")


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
    receiver's write (see ``Admission.not_stored``)."""
    credentials: PeerCredentials = PLAINTEXT
    """Mutual TLS or plaintext to the receivers' peer ports (``goq.sidecar.adapters.peer_tls``)."""


class Outbound:
    """The send queue of one sidecar: its admission, its lanes, and the messages it still has to deliver."""

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
        self.admission = Admission(self)
        """The send queue's bound, placement, durable writes and early delivery (``admit``)."""
        self.closing = False

    @property
    def pending(self) -> int:
        """Messages still to deliver, held or waiting in the store: what the send queue's bound counts."""
        return len(self.holding) + self.waiting

    @property
    def waiting(self) -> int:
        """Persistent messages that wait in the store only, beyond their destination's memory window."""
        return self.backlog.total if self.backlog else 0

    async def admit(
        self, items: list[Outgoing], spec: GoQueueSpec, *, refusal: str | None = None
    ) -> list[SendReceipt | GoQError]:
        """Take signed ``items`` into the send queue; per item a receipt, or the error that refused it (see
        ``Admission.admit``)."""
        return await self.admission.admit(items, spec, refusal=refusal)

    async def restore(self, items: list[Outgoing]) -> None:
        """Store again and deliver messages handed back from the poison queue (a redrive): outside the
        bound, never delivered before they are stored; ``StoreUnavailableError`` if they could not be."""
        for persistent in (True, False):
            await self.stores[persistent].add([m for m in items if m.persistent is persistent])
        self.enqueue(items)

    def adopt(self, outgoing: list[Outgoing], waiting: Mapping[str, int]) -> None:
        """Take over records claimed from the store (at start, or from a stopped replica): deliver
        ``outgoing``, and load back as lanes have room the ``waiting`` ones, counted per destination."""
        self.enqueue(outgoing)
        if self.backlog:
            self.backlog.add(waiting)

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

    def _resident(self, destination: Address) -> tuple[int, int]:
        lane = self.lanes.get(destination)
        return (lane.resident, lane.resident_bytes) if lane else (0, 0)

    def let_go(self, items: list[Outgoing]) -> None:
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
        self.closing = True
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
        self.let_go(items)
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
        admission = self.admission
        admission.attempted(items, unknown)
        self.counters.attempts_failed += len(items)
        log.info(
            "delivery of %d message(s) to %s failed: %s",
            len(items),
            lane.destination,
            error,
            extra={"source": str(self.owner), "destination": str(lane.destination), "ids": [m.id for m in items[:20]]},
        )
        retry, give_up = attempts_failed(str(self.owner), items, self.policy(), error, self.clock(), self.rand)
        if withdrawn := admission.withdrawn:  # their write failed: not accepted, not tried again
            retry = [m for m in retry if m.id not in withdrawn]
            give_up = [g for g in give_up if g[0].id not in withdrawn]
        for item in retry:
            lane.push(item)
        unstored = admission.unstored  # their attempts are recorded once their write returns
        self.stores[True].record_failures([m for m in retry if m.persistent and m.id not in unstored])
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
            self.let_go([m for m, _ in items])
            self._forget([m for m, _ in items])
            return
        now = self.clock()
        for item, _ in items:
            if item.id not in self.admission.withdrawn:
                item.next_at = now + POISON_RETRY
                lane.push(item)

    def _forget(self, items: list[Outgoing]) -> None:
        for persistent in (True, False):
            ids = [m.id for m in items if m.persistent is persistent]
            if persistent:  # one delivered before its write returned is forgotten after it
                ids = self.admission.forgettable(ids)
            if ids:
                self.stores[persistent].forget(ids)
