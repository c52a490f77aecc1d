"""The queue manager: what the application APIs call. Everything else in the sidecar serves it.

``send`` validates and signs, then hands the messages to ``Outbound.admit``, which bounds the send
queue, makes persistent messages durable and delivers them; ``receive``/``acknowledge``/``reject``
serve the inbound queue; ``redrive`` hands poisoned messages back. REST and gRPC are thin
translations of these calls.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from goq.errors import ConfigError, GoQError
from goq.identity import Address
from goq.messages import Message, new_message_id, validate_headers, validate_message_id
from goq.queue_spec import GoQueueSpec
from goq.sidecar.adapters.stores.absent import NoCustody
from goq.sidecar.core.inbound import Inbound
from goq.sidecar.core.outbound import Outbound
from goq.sidecar.core.tracing import Tracing
from goq.sidecar.domain.batching import GroupCommitter
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.errors import NotFoundError, PayloadTooLargeError
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.receipts import POISONED as POISONED
from goq.sidecar.domain.receipts import QUEUED as QUEUED
from goq.sidecar.domain.receipts import SendReceipt as SendReceipt
from goq.sidecar.domain.records import OUTBOUND, Incoming, Outgoing, PoisonRecord, inbound_key
from goq.sidecar.ports.poison import BrowsablePoisonSink, PoisonSinkError
from goq.sidecar.ports.stores import Claimed, Custody, InboxStore, OutboxStore
from goq.signing import Keyring

log = logging.getLogger("goq.sidecar")

SINGLES_BATCH: Final = 500
"""Most single sends gathered into one ``send``: a stream's batch."""
SINGLES_SENDING: Final = 2
"""Gathered sends under way at once: a second is prepared while the first's durable write is in flight."""


@dataclass
class SendRequest:
    """What the application asks to send."""

    to: str
    payload: bytes
    persistent: bool = True
    headers: dict[str, str] | None = None
    id: str | None = None


@dataclass
class Stats:
    """Queue depths and totals, for ``/v1/stats``, gRPC ``Stats`` and the status heartbeat."""

    identity: str
    send_queue: int
    receive_queue: int
    in_flight: int
    counters: Counters = field(default_factory=Counters)


class QueueManager:
    """One sidecar's queues and the operations its application may perform on them."""

    def __init__(
        self,
        me: Address,
        keyring: Callable[[], Keyring],
        spec: Callable[[], GoQueueSpec],
        outbound: Outbound,
        inbound: Inbound,
        outboxes: dict[bool, OutboxStore],
        inboxes: dict[bool, InboxStore],
        poisoner: Poisoner,
        counters: Counters,
        *,
        max_payload: int,
        store: Custody | None = None,
        heartbeat: float = 5.0,
        clock: Callable[[], float] = time.time,
        tracing: Tracing | None = None,
    ) -> None:
        self.me = me
        self.tracing = tracing
        self.keyring = keyring
        self.spec = spec
        self.outbound = outbound
        self.inbound = inbound
        self.outboxes = outboxes
        self.inboxes = inboxes
        self.poisoner = poisoner
        self.counters = counters
        self.max_payload = max_payload
        self.store: Custody = store if store is not None else NoCustody()
        """Resumes and adopts the persistent records; none given: there is no store, persistent sends are refused."""
        self.heartbeat = heartbeat
        self.clock = clock
        self._tasks: list[asyncio.Task[None]] = []
        self._singles: dict[bool, GroupCommitter[SendRequest, SendReceipt | GoQError]] = {
            persistent: GroupCommitter(self.send, max_batch=SINGLES_BATCH, concurrency=SINGLES_SENDING)
            for persistent in (True, False)
        }
        """Per persistence, single sends gathered into one ``send`` (``send_one``)."""

    # Lifecycle.

    async def start(self) -> None:
        """Resume what this sidecar held before (persistent messages, both ways), then run housekeeping."""
        resumed = await self.store.resume()
        self._hold(resumed)
        if resumed.outgoing or resumed.incoming or resumed.waiting:
            log.info(
                "resumed %d outbound and %d inbound persistent message(s); %d more outbound wait in the store",
                len(resumed.outgoing),
                len(resumed.incoming),
                sum(resumed.waiting.values()),
            )
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._expire_leases(), name="leases"))
        self._tasks.append(loop.create_task(self._heartbeat(self.heartbeat), name="heartbeat"))

    async def stop(self, grace: float) -> None:
        """Finish answers in flight within ``grace`` seconds, write what is pending, stop housekeeping."""
        await self.outbound.close(grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for outbox in self.outboxes.values():
            await outbox.close()
        for inbox in self.inboxes.values():
            await inbox.close()
        self.inbound.refusals.close()

    # Sending.

    async def send(self, requests: list[SendRequest]) -> list[SendReceipt | GoQError]:
        """Accept messages for delivery; per request a receipt, or the error that refused it.

        Validated and signed here (``_prepare``); everything after that (the send queue's bound, the durable
        write, placement, early delivery) is one call, ``Outbound.admit``."""
        results: list[SendReceipt | GoQError | None] = [None] * len(requests)
        traced = self.tracing.sending(requests) if self.tracing is not None else None
        prepared: list[tuple[int, Outgoing]] = []
        spec, now = self.spec(), self.clock()
        limit = min(self.max_payload, spec.max_message_size)
        for index, request in enumerate(requests):
            try:
                prepared.append((index, self._prepare(request, now, limit)))
            except ConfigError as exc:
                results[index] = exc
        admitted = await self.outbound.admit([m for _, m in prepared], spec, refusal=self.store.refusal)
        for (index, _), result in zip(prepared, admitted, strict=True):
            results[index] = result
        if traced is not None:
            traced(results)
        return [r if r is not None else GoQError("internal: no result") for r in results]

    def send_one(self, request: SendRequest) -> "asyncio.Future[list[SendReceipt | GoQError]]":
        """Accept one message; the future's one result is its receipt, or the error that refused it.

        Why: most applications send one message per call (gRPC ``Send``, REST ``POST /v1/messages``). Sent
        one by one, each paid a whole ``send``: a store document and a place in a group commit, a delivery
        batch of its own, a delete once delivered. Here single sends are group-committed into ``send``: one
        alone goes at once; those that arrive while earlier ones are being sent go together next, one
        ``send`` as a stream's batch is (by persistence: a transient send never waits for a durable write).
        Each request keeps its own result: one refused does not refuse the others. A caller that stops
        waiting (the application hung up) does not stop the send: once stored, the message is delivered."""
        return self._singles[bool(request.persistent)].enqueue([request])

    def _prepare(self, request: SendRequest, now: float, limit: int) -> Outgoing:
        destination = Address.parse(request.to).resolved(self.me.namespace or "default")
        if not isinstance(request.payload, bytes):
            raise ConfigError("payload must be bytes")
        if len(request.payload) > limit:  # larger payloads: the streaming send (large messages)
            raise PayloadTooLargeError(f"payload is {len(request.payload)} bytes; the limit is {limit} bytes")
        message_id = validate_message_id(request.id) if request.id else new_message_id()
        message = Message(
            id=message_id,
            source=self.me,
            destination=destination,
            created_at_ms=int(now * 1000),
            payload=request.payload,
            persistent=bool(request.persistent),
            headers=validate_headers(request.headers),
        )
        body = message.encode()
        key_id, signature = self.keyring().try_sign(body, destination.namespace)  # unsigned: signed on delivery
        return Outgoing(
            id=message_id,
            destination=destination,
            body=body,
            key_id=key_id,
            signature=signature,
            persistent=message.persistent,
            created_at=now,
            generated=not request.id,
        )

    # Receiving.

    async def receive(self, limit: int, wait: float) -> list[Incoming]:
        """Lease up to ``limit`` messages, waiting up to ``wait`` seconds for one."""
        items = await self.inbound.leases.receive(limit, wait)
        if self.tracing is not None and items:
            self.tracing.received(items)
        return items

    def acknowledge(self, ids: list[str]) -> list[str]:
        """Done with these messages; returns the ids that were not leased."""
        if self.tracing is not None:
            leased = self.inbound.leases.leased
            self.tracing.acknowledged([leased[i] for i in ids if i in leased])
        return self.inbound.leases.acknowledge(ids)

    async def reject(self, message_id: str, *, requeue: bool, delay: float = 0.0, reason: str = "") -> None:
        """Give a leased message back (after ``delay`` s) or poison it now."""
        if delay < 0 or delay > 86400:
            raise ConfigError(f"delay must be from 0 to 86400 seconds, got {delay}")
        if not await self.inbound.leases.reject(message_id, requeue=requeue, delay=delay, reason=reason):
            raise NotFoundError(f"message {message_id!r} is not leased to the application")

    def stats(self) -> Stats:
        return Stats(
            identity=str(self.me),
            send_queue=self.outbound.pending,
            receive_queue=self.inbound.depth,
            in_flight=len(self.inbound.leases.leased),
            counters=self.counters,
        )

    # The poison queue.

    def _browsable(self) -> BrowsablePoisonSink:
        sink = self.poisoner.sink
        if not isinstance(sink, BrowsablePoisonSink):
            raise ConfigError("this sidecar's poison sink keeps nothing to list or redrive (use type: mongodb)")
        return sink

    async def poisoned(self, limit: int = 100) -> list[PoisonRecord]:
        """The newest poisoned messages of this identity."""
        return await self._browsable().browse(str(self.me), limit)

    async def redrive(self, ids: list[str]) -> list[str]:
        """Hand poisoned messages back for another round of delivery; returns the ids handed back.

        The records leave the poison queue only after the messages are stored again: taken out first, a
        store that failed (the database down, an election) lost them, in neither place any more. A removal that
        fails after that leaves them listed there too (a second redrive would send them again; the receiver
        recognises the repeat within its de-duplication window)."""
        sink = self._browsable()
        records = await sink.find(str(self.me), ids)
        now = self.clock()
        outgoing = [self._outgoing_again(r, now) for r in records if r.direction == OUTBOUND]
        incoming = [self._incoming_again(r, now) for r in records if r.direction != OUTBOUND]
        await self.outbound.restore(outgoing)
        for persistent in (True, False):
            await self.inboxes[persistent].restore([m for m in incoming if m.message.persistent is persistent])
        self.inbound.leases.recover(incoming)
        redriven = list(dict.fromkeys(r.id for r in records))
        try:
            await sink.remove(str(self.me), redriven)
        except PoisonSinkError as exc:
            log.warning("redriven %d message(s) stay listed in the poison queue too: %s", len(redriven), exc)
        return redriven

    def _outgoing_again(self, r: PoisonRecord, now: float) -> Outgoing:
        """Signed again with today's active key: the key it was signed with may be retired (and the message
        poisoned for it), and the receiver accepts only keys it still knows."""
        key_id, signature = self.keyring().try_sign(r.body, Address.parse(r.peer).namespace)
        return Outgoing(
            id=r.id,
            destination=Address.parse(r.peer),
            body=r.body,
            key_id=key_id,
            signature=signature,
            persistent=r.persistent,
            created_at=now,
        )

    @staticmethod
    def _incoming_again(r: PoisonRecord, now: float) -> Incoming:
        message = Message.decode(r.body)
        return Incoming(
            key=inbound_key(message.source, message.id),
            message=message,
            body=r.body,
            key_id=r.key_id,
            signature=r.signature,
            received_at=now,
        )

    # Housekeeping.

    async def _expire_leases(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            try:
                await self.inbound.leases.expire_leases()
            except Exception:
                log.exception("lease expiry failed; trying again")

    def _hold(self, claimed: Claimed) -> None:
        """Take claimed records into the queues: outbound delivery, the backlog's counts, the inbound queue."""
        self.outbound.adopt(claimed.outgoing, claimed.waiting)
        self.inbound.leases.recover(claimed.incoming)

    async def _heartbeat(self, interval: float) -> None:
        """Keep this instance's records its own, and adopt those of replicas that died."""
        while True:
            await asyncio.sleep(interval)
            try:
                adopted = await self.store.heartbeat()
                if adopted.holders:
                    self._hold(adopted)
                    waiting = adopted.waiting
                    more = f" ({sum(waiting.values())} more wait in the store)" if waiting else ""
                    log.info(
                        "adopted %d outbound%s and %d inbound message(s) from stopped instance(s) %s",
                        len(adopted.outgoing),
                        more,
                        len(adopted.incoming),
                        ", ".join(adopted.holders),
                    )
            except Exception as exc:
                log.warning("heartbeat failed (%s); trying again", exc)
