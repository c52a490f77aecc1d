"""Admission: one send's way into the send queue, from signed messages to their receipts.

The one owner of what a send does before delivery takes over (``Outbound.admit`` asks it): the send
queue's bound (beyond it a message is poisoned or refused), placement (held for its lane, or waiting in
the store only: ``core.backlog``), the durable write (``OutboxStore.add``) and early delivery.

Early delivery: persistent messages whose ids this sidecar made start on their way while their write is in
flight (the sender's and the receiver's journal flushes overlap). What that needs is kept here alone: the
store forgets a delivered one only after its write returned; attempts that failed meanwhile are recorded
once it has; each counts once against the bound and its destination's window; and a write that fails
withdraws them, accepting those delivered meanwhile and writing again those that may still arrive
(``not_stored``, ``_store_again``). ``Outbound`` asks it about these messages as its lanes report back.
"""

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from goq.api.v1 import peer_pb2
from goq.errors import GoQError
from goq.identity import Address
from goq.queue_spec import GoQueueSpec, Overflow
from goq.sidecar.domain import poison_reasons as poisons
from goq.sidecar.domain.attempts import DELIVERED, STILL_STORING
from goq.sidecar.domain.errors import QueueFullError
from goq.sidecar.domain.receipts import POISONED, QUEUED, SendReceipt
from goq.sidecar.domain.records import Outgoing
from goq.sidecar.ports.stores import StoreUnavailableError

if TYPE_CHECKING:
    from goq.sidecar.core.outbound import Outbound

log = logging.getLogger("goq.sidecar.outbound")
answers_log = logging.getLogger("goq.sidecar")
"""Where a send's own warnings go (``_store_again``), as they did from the engine."""

RESOLVE_PAUSE: Final = 0.25
"""Seconds between the attempts that resolve a withdrawn message's unknown outcome (see ``not_stored``)."""
STORE_AGAIN_PAUSE: Final = (0.2, 1.0)
"""Seconds between writes of a message whose delivery's outcome is unknown (``_store_again``): the first, the most."""

Result = SendReceipt | GoQError


class Admission:
    """The send queue's bound, placement, durable writes and early-delivery state of one ``Outbound``."""

    def __init__(self, outbound: "Outbound") -> None:
        self.outbound = outbound
        self.reserved = 0
        """Messages admitted under the bound and being stored, not yet counted in ``Outbound.pending``."""
        self.unstored: set[str] = set()
        """Ids of persistent messages being delivered while their store write is still on its way."""
        self.withdrawn: set[str] = set()
        """Those of ``unstored`` whose write failed: never tried again (see ``not_stored``)."""
        self._settled: set[str] = set()
        """Those of ``unstored`` already delivered or poisoned: their ``forget`` waits for the write."""
        self._unknown: set[str] = set()
        """Those of ``unstored`` whose last attempt has no known outcome: the receiver may have stored them."""
        self._storing_in_order = 0
        """Persistent sends being stored that are delivered only once stored: later sends wait their turn."""

    async def admit(self, items: list[Outgoing], spec: GoQueueSpec, *, refusal: str | None = None) -> list[Result]:
        """Take signed ``items`` into the send queue: per item a receipt (``queued`` once durable if
        persistent, ``poisoned`` over the bound), or the error that refused it. ``refusal``: why persistent
        messages cannot be kept here (no store), or None."""
        results: list[Result | None] = [None] * len(items)
        indexed: list[tuple[int, Outgoing]] = []
        for index, item in enumerate(items):
            if item.persistent and refusal is not None:  # refused before the bound, not poisoned over it
                results[index] = StoreUnavailableError(refusal)
            else:
                indexed.append((index, item))
        admitted = await self._bound(indexed, spec, results)
        await self._keep(admitted, results, deliver_now=refusal is None)
        return [r if r is not None else GoQError("internal: no result") for r in results]

    async def _bound(
        self, indexed: list[tuple[int, Outgoing]], spec: GoQueueSpec, results: list[Result | None]
    ) -> list[tuple[int, Outgoing]]:
        """Apply the send queue's bound: beyond it, poison (``overflow: poison``) or refuse (``reject``)."""
        room = max(0, spec.send_queue_limit - self.outbound.pending - self.reserved)
        if len(indexed) <= room:
            return indexed
        admitted, over = indexed[:room], indexed[room:]
        detail = poisons.send_queue_full(spec.send_queue_limit)
        if spec.overflow is Overflow.REJECT:
            for index, _ in over:
                results[index] = QueueFullError(f"{detail}; retry later")
            return admitted
        owner, now = str(self.outbound.owner), self.outbound.clock()
        records = [poisons.send_overflow(owner, m, spec.send_queue_limit, now) for _, m in over]
        kept = await self.outbound.poisoner.poison(records)
        for index, item in over:
            results[index] = (
                SendReceipt(item.id, POISONED) if kept else QueueFullError(f"{detail} and the poison queue failed")
            )
        return admitted

    async def _keep(
        self, admitted: list[tuple[int, Outgoing]], results: list[Result | None], *, deliver_now: bool
    ) -> None:
        """Make persistent messages durable (and both kinds idempotent), then start their delivery."""
        reserved = len(admitted)
        self.reserved += reserved
        try:
            for persistent in (True, False):
                group = [(i, m) for i, m in admitted if m.persistent is persistent]
                if not group:
                    continue
                items = [m for _, m in group]
                early = self.storing(items, deliver_now=deliver_now) if persistent else []
                # Held for delivery now, so counted in ``Outbound.pending``: no longer reserved (not counted twice).
                self.reserved -= len(early)
                reserved -= len(early)
                for (index, _), result in zip(group, await self._write(items, early), strict=True):
                    results[index] = result
        finally:
            self.reserved -= reserved

    async def _write(self, items: list[Outgoing], early: list[Outgoing]) -> list[Result]:
        """The durable write of ``items`` (all persistent or all transient), then their delivery."""
        persistent, counters = items[0].persistent, self.outbound.counters
        try:
            fresh = await self.outbound.stores[persistent].add(items)
        except StoreUnavailableError as exc:
            # Delivered meanwhile means stored by the receiver: accepted all the same.
            delivered, unknown = await self.not_stored(items, early) if persistent else (set(), set())
            if unknown:  # the receiver may store them yet: never refused, kept instead
                await self._store_again([m for m in items if m.id in unknown])
                delivered |= unknown
            counters.sent += len(delivered)
            return [SendReceipt(m.id, QUEUED) if m.id in delivered else exc for m in items]
        except BaseException:
            if persistent:
                self.not_stored_nowait(items, early)
            raise
        counters.sent += sum(fresh)
        # A known id is a repeated send: nothing new to do if it is held for delivery. If it is stored but
        # not held (an earlier send's answer was lost to a failed write), hold it now.
        self.stored(items, fresh, early)
        return [SendReceipt(m.id, QUEUED) for m in items]

    # The steps of a write, in order: ``storing``, then ``stored`` or ``not_stored`` (``not_stored_nowait``).

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
        backlog = self.outbound.backlog
        if backlog:
            backlog.place(persistent)
        if not deliver_now or self._storing_in_order or not all(m.generated and not m.spill for m in persistent):
            self._storing_in_order += 1
            return []
        if backlog:
            backlog.held(persistent)  # counted in their lane from now on, not twice
        self.unstored.update(m.id for m in persistent)
        self.outbound.enqueue(persistent)
        return persistent

    def stored(self, items: list[Outgoing], fresh: list[bool], early: list[Outgoing] | None = None) -> None:
        """After storing (``fresh``: per item, new): hold and deliver what is not to wait in the store;
        ``early``: what ``storing`` started delivering already."""
        if early:
            self._written(early)
            return
        backlog = self.outbound.backlog
        persistent = any(m.persistent for m in items)
        held = backlog.stored(items, fresh) if backlog and persistent else items
        if persistent:
            self._storing_in_order -= 1
        self.outbound.enqueue(held)

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
        it must not be refused, nor accepted while kept nowhere durable: it is written again
        (``_store_again``). A try given up on can store it later: its write may wait at the receiver
        behind another one (issue 16, replica-set seed 7: refused, then delivered)."""
        outbound = self.outbound
        if not early:
            if outbound.backlog:
                outbound.backlog.abandon(items)
            self._storing_in_order -= 1
            return set(), set()
        ids = {m.id for m in early}
        self.withdrawn |= ids
        lanes = {lane for m in early if (lane := outbound.lanes.get(m.destination)) is not None}
        for lane in lanes:
            outbound.let_go(lane.withdraw(ids))
        answers = [task for lane in lanes for task in lane.completions]
        try:
            if answers:
                await asyncio.wait(answers)
            unknown = [m for m in early if m.id in self._unknown and m.id not in self._settled]
            unresolved = await self._resolve(unknown) if unknown else set()
            settled = ids & self._settled
        finally:  # also when the send is cancelled while it waits (its client gave up): nothing is left behind
            outbound.let_go(early)  # whatever was in flight and not delivered is not held either
            self._settled -= ids
            self.unstored -= ids
            self.withdrawn -= ids
            self._unknown -= ids
        return settled, unresolved

    def not_stored_nowait(self, items: list[Outgoing], early: list[Outgoing]) -> None:
        """The send was cancelled while storing: its outcome unknown, what was delivering goes on."""
        if early:
            self._written(early)
            return
        if self.outbound.backlog:
            self.outbound.backlog.abandon(items)
        self._storing_in_order -= 1

    def _written(self, early: list[Outgoing]) -> None:
        """The write of messages delivered early returned: forget in the store those already delivered, and
        record the attempts that failed meanwhile (the write carried none)."""
        ids = {m.id for m in early}
        self.unstored -= ids
        self._unknown -= ids
        store = self.outbound.stores[True]
        settled = [m for m in early if m.id in self._settled]
        if settled:
            self._settled.difference_update(m.id for m in settled)
            store.forget([m.id for m in settled])
        failed = [m for m in early if m.failed_attempts and m.id in self.outbound.holding]
        if failed:
            store.record_failures(failed)

    # What ``Outbound`` asks about messages delivered early, as its lanes report back.

    def attempted(self, items: list[Outgoing], unknown: bool | None) -> None:
        """An attempt at ``items`` failed: note for those delivered early whether the receiver may have
        stored them (``unknown``), or answered that it did not (None: the attempt never reached it)."""
        if not self.unstored or unknown is None:
            return
        early = [m.id for m in items if m.id in self.unstored]
        if unknown:
            self._unknown.update(early)
        else:
            self._unknown.difference_update(early)

    def forgettable(self, ids: list[str]) -> list[str]:
        """Of persistent messages delivered or poisoned, those the store may forget now; the others' write
        is still on its way (a delete now would miss it): forgotten once it returns (``_written``)."""
        if not self.unstored:
            return ids
        self._settled.update(i for i in ids if i in self.unstored)
        return [i for i in ids if i not in self.unstored]

    # Resolving what a failed write leaves unknown.

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
        outbound = self.outbound
        settle_timeout = outbound.config.settle_timeout
        patience = settle_timeout + outbound.policy().attempt_timeout
        ask_until = outbound.clock() + settle_timeout
        pending = items
        while pending:
            batches = self._batches(pending)
            answers = await asyncio.gather(*(outbound.lanes[b[0].destination].probe(b, patience) for b in batches))
            still = []
            storing = False
            for batch, results in zip(batches, answers, strict=True):
                if results is None:
                    still += batch
                    continue
                answered = list(zip(batch, results, strict=True))
                if delivered := [m for m, r in answered if r.outcome in DELIVERED]:
                    outbound.delivered(delivered)
                unknown = [m for m, r in answered if _outcome_unknown(r)]
                storing = storing or bool(unknown)
                still += unknown
            pending = still
            if storing:  # a write of theirs is in flight at the receiver: it ends, then it answers for them
                ask_until = max(ask_until, outbound.clock() + settle_timeout)
            if not pending or outbound.closing or outbound.clock() + RESOLVE_PAUSE >= ask_until:
                break
            await asyncio.sleep(RESOLVE_PAUSE)
        if pending:
            log.warning(
                "%d message(s) whose write failed may still reach their destination: no answer for them within %.0f s",
                len(pending),
                settle_timeout,
                extra={"source": str(outbound.owner), "ids": [m.id for m in pending[:20]]},
            )
        return {m.id for m in pending}

    def _batches(self, items: list[Outgoing]) -> list[list[Outgoing]]:
        """``items`` per destination, in batches of at most ``max_batch`` messages and ``max_batch_bytes``."""
        config = self.outbound.config
        batches: list[list[Outgoing]] = []
        last: dict[Address, tuple[list[Outgoing], int]] = {}
        for item in items:
            batch, size = last.get(item.destination, ([], 0))
            if not batch or len(batch) >= config.max_batch or size + item.size > config.max_batch_bytes:
                batch, size = [], 0
                batches.append(batch)
            batch.append(item)
            last[item.destination] = (batch, size + item.size)
        return batches

    async def _store_again(self, items: list[Outgoing]) -> None:
        """Write again, until the store takes them, messages whose write failed while their early delivery's
        outcome stayed unknown (``not_stored``), then deliver them as any stored message.

        Why: the receiver may still store such a message (a write of its own that the sender's asking gave up
        on, queued behind another write while the database was down), so a refusal could be followed by its
        delivery; accepting it kept nowhere durable could lose it. Only a durable copy here makes ``queued``
        true, and the receiver recognises a message it stored as a duplicate. The answer waits as long as
        that takes: the client's deadline (or the sidecar's stop) ends the wait, its outcome then unknown to
        the client, as it is."""
        answers_log.warning(
            "%d message(s) whose write failed have no known outcome at %s: writing them again before answering",
            len(items),
            ", ".join(sorted({str(m.destination) for m in items})),
            extra={"ids": [m.id for m in items[:20]]},
        )
        pause = STORE_AGAIN_PAUSE[0]
        while True:
            try:
                await self.outbound.stores[True].add(items)
            except StoreUnavailableError as exc:
                log.debug("writing %d message(s) again failed (%s); trying again", len(items), exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, STORE_AGAIN_PAUSE[1])
                continue
            self.outbound.enqueue(items)
            return


def _outcome_unknown(result: peer_pb2.MessageResult) -> bool:
    """Whether an answer leaves open that the receiver stores the message: its earlier delivery's write is
    still in flight there."""
    return result.outcome == peer_pb2.OUTCOME_RETRY_LATER and result.reason == STILL_STORING
