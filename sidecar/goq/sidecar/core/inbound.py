"""Inbound: what other sidecars deliver, held for the application until it acknowledges.

Order of checks for each delivered message, the promise's order: verify the signature (before
anything else), decode, check it is for this identity and not too old (``goq.freshness``), that
its sender may send here (``allowFrom``, ``goq.access``), de-duplicate, check the receive queue's
bound, store it (durably if persistent), and only then answer the sender. The application's side, the
messages it gets with a lease, is ``Inbound.leases`` (``core.leases``).
"""

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from goq.access import access_refusal
from goq.api.v1 import envelope_pb2, peer_pb2
from goq.errors import GoQError
from goq.freshness import age_refusal
from goq.identity import Address
from goq.queue_spec import GoQueueSpec, Overflow
from goq.sidecar.core.leases import InboundConfig as InboundConfig
from goq.sidecar.core.leases import Leases
from goq.sidecar.domain import poison_reasons as poisons
from goq.sidecar.domain.attempts import STILL_STORING
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.histograms import Histograms
from goq.sidecar.domain.peer_identity import IDENTITY_MISMATCH, identity_mismatch
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Incoming, inbound_key
from goq.sidecar.domain.refusing import Refusals
from goq.sidecar.ports.stores import InboxStore, StoreUnavailableError
from goq.signing import UNKNOWN_KEY, Keyring, SignatureError

log = logging.getLogger("goq.sidecar.inbound")

Result = peer_pb2.MessageResult


@dataclass
class Arrival:
    """One delivered batch on its way in: results so far, candidates to store, and what was stored."""

    results: list[Result | None]
    candidates: list[tuple[int, Incoming]] = field(default_factory=list)
    stored: list[Incoming] = field(default_factory=list)
    joined: list[tuple[int, str, asyncio.Event]] = field(default_factory=list)
    """Repeats of messages an earlier arrival is storing: index, key, and that arrival's ``written``."""
    written: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once this arrival's store write has returned, held or not."""


JOIN_WAIT = 5.0
"""Longest a repeat of a message being stored waits for that write before it is answered "retry later": the
default ``attemptTimeout``, within which the sender still waits for this answer."""


class Inbound:
    """The receive queue of one sidecar: what peers deliver, checked and stored into ``leases``, the messages
    held for the application."""

    def __init__(
        self,
        me: Address,
        keyring: Callable[[], Keyring],
        spec: Callable[[], GoQueueSpec],
        stores: dict[bool, InboxStore],
        poisoner: Poisoner,
        counters: Counters,
        config: InboundConfig,
        *,
        clock: Callable[[], float] = time.time,
        histograms: Histograms | None = None,
    ) -> None:
        self.me = me
        self.histograms = histograms
        self.keyring = keyring
        self.spec = spec
        self.stores = stores
        self.poisoner = poisoner
        self.counters = counters
        self.config = config
        self.clock = clock
        self.leases = Leases(me, stores, poisoner, counters, config, clock=clock)
        self.storing: dict[str, asyncio.Event] = {}
        """Keys in ``leases.live`` whose store write has not returned, and the event set when it has: not durably
        held yet, so a repeat of one waits for that write (``_join``) and is never answered "duplicate" before
        it held (the sender would forget a message the write may still lose)."""
        self._admitting = 0
        """Keys in ``leases.live`` reserved by arrivals whose bound is not applied yet."""
        self.large_ready: set[str] = set()
        """Keys of large messages whose bodies were received and verified (``goq.sidecar.large``): only
        their envelopes are accepted; a large envelope without its body is refused."""

    @property
    def depth(self) -> int:
        """Messages held for the application; those of batches still being checked against the bound
        are not counted yet (some of them may be refused)."""
        return len(self.leases.live) - self._admitting

    # From peers.

    async def accept(self, envelopes: Sequence[envelope_pb2.SignedEnvelope]) -> list[Result]:
        """Check, store and queue a delivered batch; one result per message, in order."""
        return self.publish(await self.store(self.prepare(envelopes)))

    def prepare(self, envelopes: Sequence[envelope_pb2.SignedEnvelope]) -> "Arrival":
        """Check each message and reserve its place; synchronous, so batches keep their order."""
        arrival = Arrival([None] * len(envelopes))
        now = self.clock()
        for index, envelope in enumerate(envelopes):
            checked = self._check(envelope, now)
            if isinstance(checked, Result):
                arrival.results[index] = checked
            elif (write := self.storing.get(checked.key)) is not None:
                self.counters.repeats_while_storing += 1
                arrival.joined.append((index, checked.key, write))
            elif checked.key in self.leases.live or checked.key in self.leases.consumed:
                self.counters.duplicates += 1
                arrival.results[index] = Result(outcome=peer_pb2.OUTCOME_DUPLICATE)
            else:
                self.leases.live.add(checked.key)
                self.storing[checked.key] = arrival.written
                arrival.candidates.append((index, checked))
        self._admitting += len(arrival.candidates)
        return arrival

    async def store(self, arrival: "Arrival") -> "Arrival":
        """Apply the bound and store; several arrivals may be stored at once (one group commit).

        Whatever happens, the arrival's keys leave ``storing``: held durably, or no longer held at all (a
        failed or cancelled write lets go of the key, so the sender's retry is stored anew; a write that
        failed only in appearance is found by the store and counts as new, see ``InboxStore.add``)."""
        try:
            try:
                admitted = await self._admit(arrival.candidates, arrival.results)
            finally:
                self._admitting -= len(arrival.candidates)
            arrival.stored = await self._store(admitted, arrival.results)
        except Exception:
            log.exception("storing a delivered batch failed; the sender will retry it")
            self._let_go(arrival, "receiver error")
        except BaseException:  # cancelled (shutting down): nothing here is answered or queued
            self._let_go(arrival, "receiver stopping")
            raise
        finally:
            for _, item in arrival.candidates:
                del self.storing[item.key]
            arrival.written.set()
        await self._join(arrival)
        return arrival

    async def _join(self, arrival: "Arrival") -> None:
        """Answer the repeats of messages that were being stored when they came, once those writes returned
        (up to JOIN_WAIT): "duplicate" if held, "retry later" if not. A sender whose attempt outlived a slow
        write then learns the outcome instead of sending the batch again and again while it lands: under
        overload those repeats (each checked and signed anew) were most of the sidecars' work."""
        if not arrival.joined:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(JOIN_WAIT):
                for write in {id(w): w for _, _, w in arrival.joined}.values():
                    await write.wait()
        for index, key, _ in arrival.joined:
            if key not in self.storing and (key in self.leases.live or key in self.leases.consumed):
                self.counters.duplicates += 1
                arrival.results[index] = Result(outcome=peer_pb2.OUTCOME_DUPLICATE)
            else:  # still being stored, or let go (the sender's next attempt is stored anew)
                arrival.results[index] = Result(outcome=peer_pb2.OUTCOME_RETRY_LATER, reason=STILL_STORING)

    def _let_go(self, arrival: "Arrival", reason: str) -> None:
        for index, item in arrival.candidates:
            self.leases.live.discard(item.key)
            arrival.results[index] = Result(outcome=peer_pb2.OUTCOME_RETRY_LATER, reason=reason)
        arrival.stored = []

    def publish(self, arrival: "Arrival") -> list[Result]:
        """Queue what was stored, for the application; call in the order the arrivals came."""
        self._enqueue(arrival.stored)
        return [
            r if r is not None else Result(outcome=peer_pb2.OUTCOME_RETRY_LATER, reason="internal")
            for r in arrival.results
        ]

    def _check(self, envelope: envelope_pb2.SignedEnvelope, now: float) -> Incoming | Result:
        try:
            message = self.keyring().open_envelope(envelope.body, envelope.key_id, envelope.signature)
        except SignatureError as exc:
            refused = self._refuse(exc.reason, str(exc))
            if exc.reason == UNKNOWN_KEY:  # perhaps a new key not propagated here yet: retry, never poison at once
                refused.outcome = peer_pb2.OUTCOME_RETRY_LATER
            return refused
        except GoQError as exc:
            return self._refuse("malformed", str(exc))
        if (impostor := identity_mismatch(message.source)) is not None:  # mutual TLS: goq.sidecar.domain.peer_identity
            return self._refuse(IDENTITY_MISMATCH, impostor)
        if message.destination != self.me:
            return self._refuse("wrong-destination", f"this is {self.me}, not {message.destination}")
        if (stale := age_refusal(message.created_at_ms, now, self.config.dedupe_window)) is not None:
            return self._refuse(*stale)
        if (forbidden := access_refusal(self.spec().allow_from, message.source, self.me)) is not None:
            return self._refuse(*forbidden)  # allowFrom (goq.access), followed live from the GoQueue
        key = inbound_key(message.source, message.id)
        if message.large is not None and key not in self.large_ready:
            return self._refuse("malformed", "a large message's envelope came without its body (see Peer.Transfer)")
        return Incoming(
            key=key,
            message=message,
            body=envelope.body,
            key_id=envelope.key_id,
            signature=envelope.signature,
            received_at=now,
        )

    @functools.cached_property
    def refusals(self) -> Refusals:
        """Refused deliveries: counted exactly, logged in aggregate (a flood of them writes a line per reason
        per ten seconds, not one per envelope)."""
        return Refusals(self.counters, log)

    def _refuse(self, reason: str, detail: str) -> Result:
        self.refusals.refuse(reason, detail)
        return Result(outcome=peer_pb2.OUTCOME_REJECTED, reason=f"{reason}: {detail}")

    async def _admit(
        self, candidates: list[tuple[int, Incoming]], results: list[Result | None]
    ) -> list[tuple[int, Incoming]]:
        """Apply the receive queue's bound: beyond it, poison (``overflow: poison``) or refuse for now."""
        spec = self.spec()
        # Other arrivals' reservations count as taken: never more than the limit, even while several wait.
        room = spec.receive_queue_limit - (len(self.leases.live) - len(candidates))
        if len(candidates) <= room:
            return candidates
        admitted, over = candidates[: max(room, 0)], candidates[max(room, 0) :]
        for _, item in over:
            self.leases.live.discard(item.key)
        limit = spec.receive_queue_limit
        detail = poisons.receive_queue_full(limit)
        if spec.overflow is Overflow.REJECT:
            for index, _ in over:
                results[index] = Result(outcome=peer_pb2.OUTCOME_RETRY_LATER, reason=detail)
            return admitted
        now = self.clock()
        records = [poisons.receive_overflow(str(self.me), item, limit, now) for _, item in over]
        kept = await self.poisoner.poison(records)
        outcome = peer_pb2.OUTCOME_POISONED if kept else peer_pb2.OUTCOME_RETRY_LATER
        for index, _ in over:
            results[index] = Result(outcome=outcome, reason=detail)
        return admitted

    async def _store(self, admitted: list[tuple[int, Incoming]], results: list[Result | None]) -> list[Incoming]:
        stored: list[Incoming] = []
        for persistent in (True, False):
            group = [(i, m) for i, m in admitted if m.message.persistent is persistent]
            if not group:
                continue
            try:
                fresh = await self.stores[persistent].add([m for _, m in group])
            except StoreUnavailableError as exc:
                for index, item in group:
                    self.leases.live.discard(item.key)
                    results[index] = Result(outcome=peer_pb2.OUTCOME_RETRY_LATER, reason=str(exc))
                continue
            for (index, item), new in zip(group, fresh, strict=True):
                if new:
                    stored.append(item)
                    results[index] = Result(outcome=peer_pb2.OUTCOME_ACCEPTED)
                else:
                    self.leases.live.discard(item.key)
                    self.counters.duplicates += 1
                    results[index] = Result(outcome=peer_pb2.OUTCOME_DUPLICATE)
        return stored

    def _enqueue(self, items: list[Incoming]) -> None:
        if items:
            if log.isEnabledFor(logging.DEBUG):
                for m in items:
                    fields = {"id": m.id, "source": str(m.message.source), "destination": str(self.me)}
                    log.debug("received %s", m.id, extra=fields)
            self.counters.received += len(items)
            if self.histograms is not None:
                self.histograms.received_after([m.received_at - m.message.created_at_ms / 1000 for m in items])
            self.leases.add(items)
