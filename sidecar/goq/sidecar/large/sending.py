"""Delivering large messages to their destinations' sidecars over ``Peer.Transfer``.

One task per message, at most ``concurrency`` transferring at once. An attempt sends the signed
envelope, learns from the receiver how many body bytes it already holds, and sends the rest in
chunks read from the body store; gRPC's flow control paces the writes, so a slow receiver holds back
the reads. A broken attempt is retried per the RetryPolicy, and resumes where the receiver stopped;
a refused message (bad HMAC, too large) is poisoned with the receiver's reason. What an answer or a
failed attempt means is decided as for small messages, by ``goq.sidecar.domain.attempts`` (``answered``,
``attempt_failed``), and a poison sink that keeps nothing is tried again after the same ``POISON_RETRY``.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

import grpc

from goq.api.v1 import envelope_pb2, peer_pb2, peer_pb2_grpc
from goq.errors import GoQError
from goq.messages import Message
from goq.retry import RetryPolicy
from goq.sidecar.adapters.peer_tls import PLAINTEXT, PeerCredentials
from goq.sidecar.adapters.peering import PeerUnavailableError, channel_options
from goq.sidecar.adapters.resolving import Resolver
from goq.sidecar.core.tracing import Tracing
from goq.sidecar.domain.attempts import answered, attempt_failed
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import POISON_RETRY, Poisoner
from goq.sidecar.domain.records import Outgoing, PoisonRecord
from goq.sidecar.large.bodies import BodyStore, body_name
from goq.sidecar.large.macs import sending_mac
from goq.sidecar.large.outbox import LargeOutbox
from goq.sidecar.large.progress import LargeProgress
from goq.signing import Keyring

log = logging.getLogger("goq.sidecar.large")

Transfer = grpc.aio.StreamStreamCall[peer_pb2.TransferPart, peer_pb2.TransferAck]


class LargeSender:
    """Holds the large messages of this sidecar until their destinations have them."""

    def __init__(
        self,
        owner: str,
        resolver: Resolver,
        policy: Callable[[], RetryPolicy],
        poisoner: Poisoner,
        counters: Counters,
        progress: LargeProgress,
        outboxes: dict[bool, LargeOutbox],
        bodies: dict[bool, BodyStore | None],
        *,
        concurrency: int = 4,
        clock: Callable[[], float] = time.time,
        credentials: PeerCredentials = PLAINTEXT,
        keyring: Callable[[], Keyring] | None = None,
        tracing: Tracing | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.credentials = credentials
        self.tracing = tracing
        self.keyring = keyring
        self.owner = owner
        self.resolver = resolver
        self.policy = policy
        self.poisoner = poisoner
        self.counters = counters
        self.progress = progress
        self.outboxes = outboxes
        self.bodies = bodies
        self.slots = asyncio.Semaphore(concurrency)
        self.clock = clock
        self.rand = rand
        self.pending: dict[str, Outgoing] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def enqueue(self, item: Outgoing) -> None:
        if item.id in self.pending:
            return
        self.pending[item.id] = item
        task = asyncio.get_running_loop().create_task(self._deliver(item), name=f"large {item.id}")
        self._tasks[item.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(item.id, None))

    async def close(self) -> None:
        """Stop delivering: persistent messages resume at the next start; transient ones are lost (counted)."""
        self.counters.lost_transient += sum(1 for m in self.pending.values() if not m.persistent)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _store(self, item: Outgoing) -> BodyStore:
        store = self.bodies[item.persistent]
        assert store is not None, "a large message was accepted without a store for its body"
        return store

    async def _deliver(self, item: Outgoing) -> None:
        while True:
            await asyncio.sleep(max(0.0, item.next_at - self.clock()))
            async with self.slots:
                try:
                    result = await self._attempt(item)
                except (GoQError, grpc.RpcError, OSError) as exc:
                    if await self._failed(item, _describe(exc)):
                        return
                    continue
                except Exception as exc:  # a bug must not strand the message: log it, count an attempt
                    log.exception("large message %s: the transfer failed unexpectedly", item.id)
                    if await self._failed(item, f"internal error: {_describe(exc)}"):
                        return
                    continue
            verdict = answered(self.owner, item, result, self.clock())
            if verdict.delivered:
                if self.tracing is not None:
                    self.tracing.attempted([item], "delivered")
                self.counters.delivered += 1
                await self._forget(item)
                return
            if verdict.refused is not None:
                if self.tracing is not None:
                    self.tracing.attempted([item], "rejected", result.reason)
                await self._poison(item, verdict.refused)
                return
            if await self._failed(item, verdict.retry):
                return

    @staticmethod
    async def _sign_again(keyring: Keyring, item: Outgoing, store: BodyStore, name: str) -> None:
        """Sign a message kept from before ``GOQ_KEY_SCOPE`` changed, as its receiver now verifies: its body's
        HMAC (reading the body once) and its envelope, under the active key for its destination's namespace.
        Without a key for that namespace yet, ``NoKeyError`` fails this attempt."""
        message = Message.decode(item.body)
        assert message.large is not None
        key_id, mac = sending_mac(keyring, item.destination.namespace)
        async for data in store.read(name, 0, message.large.chunk_size):
            mac.update(data)
        message.large = replace(message.large, mac=mac.digest(), key_id=key_id)
        item.body = message.encode()
        item.key_id, item.signature = keyring.sign(item.body, item.destination.namespace)
        log.info(
            "large message %s: signed again under key %s (the key layout changed since it was stored)", item.id, key_id
        )

    async def _attempt(self, item: Outgoing) -> peer_pb2.MessageResult:
        """One transfer: the envelope, then the body from where the receiver stands, then its verdict."""
        store = self._store(item)
        name = body_name(self.owner, "out", item.id)
        target = self.resolver.target(item.destination)
        if self.keyring is not None and (keyring := self.keyring()).needs_signing(item.key_id):
            await self._sign_again(keyring, item, store, name)
        envelope = envelope_pb2.SignedEnvelope(
            body=item.body, key_id=item.key_id, signature=item.signature, attempt=item.failed_attempts + 1
        )

        large = Message.decode(item.body).large
        assert large is not None
        options = channel_options(large.chunk_size)
        if self.tracing is not None:  # ended by ``_deliver`` or ``_failed`` with the attempt's outcome
            self.tracing.attempting([item], target)
        async with self.credentials.channel(target, item.destination, options) as channel:
            call: Transfer = peer_pb2_grpc.PeerStub(channel).Transfer()
            await call.write(peer_pb2.TransferPart(begin=envelope))
            ack = await _answer(call, target)
            if ack.HasField("result"):
                return ack.result
            offset = ack.have
            if self.tracing is not None:
                self.tracing.resuming(item, offset)
            if offset:
                log.info("large message %s: %s holds %d of %d bytes; resuming", item.id, target, offset, large.size)
            async for data in store.read(name, offset, large.chunk_size):
                await call.write(peer_pb2.TransferPart(chunk=peer_pb2.TransferChunk(offset=offset, data=data)))
                offset += len(data)
                self.progress.bytes_sent += len(data)
            await call.write(peer_pb2.TransferPart(end=True))
            await call.done_writing()
            while not (ack := await _answer(call, target)).HasField("result"):
                pass
            return ack.result

    async def _failed(self, item: Outgoing, error: str) -> bool:
        """Count a failed attempt; True when the message was given up on (poisoned)."""
        if self.tracing is not None:
            self.tracing.attempted([item], "failed", error)
        self.counters.attempts_failed += 1
        record = attempt_failed(self.owner, item, self.policy(), error, self.clock(), self.rand())
        attempts = item.failed_attempts
        log.info("large message %s to %s: attempt %d failed: %s", item.id, item.destination, attempts, error)
        if record is not None:
            await self._poison(item, record)
            return True
        await self.outboxes[item.persistent].failed(item)
        return False

    async def _poison(self, item: Outgoing, record: PoisonRecord) -> None:
        """The poison queue keeps the envelope; the body is dropped (see docs/sidecar.md)."""
        while not await self.poisoner.poison([record]):  # noqa: ASYNC110 - the sink is polled, nothing to wait on
            await asyncio.sleep(POISON_RETRY)
        await self._forget(item)

    async def _forget(self, item: Outgoing) -> None:
        await self.outboxes[item.persistent].remove(item.id)
        await self._store(item).delete(body_name(self.owner, "out", item.id))
        self.pending.pop(item.id, None)


async def _answer(call: Transfer, target: str) -> peer_pb2.TransferAck:
    ack = await call.read()
    if ack is grpc.aio.EOF or not isinstance(ack, peer_pb2.TransferAck):
        raise PeerUnavailableError(f"{target}: the transfer ended without an answer")
    return ack


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc) or type(exc).__name__
