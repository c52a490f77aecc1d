"""The receiving side of ``Peer.Transfer``: a large message's body, then its envelope into the inbox.

Order, as for small messages: verify the envelope's signature and check it (destination, age, ``allowFrom``,
size limit, de-duplication) before any byte of the body is stored; store the body chunk by chunk, feeding an
incremental HMAC; verify the HMAC once every byte is in; only then hand the envelope to ``Inbound``
(which stores it, durably if persistent) and answer the sender. A body whose HMAC fails is dropped
whole and the message is refused. A transfer that broke is resumed: the first answer says how many
bytes are held, and the HMAC is recomputed over them from the store.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from goq.access import access_refusal
from goq.api.v1 import envelope_pb2, peer_pb2
from goq.errors import GoQError
from goq.freshness import age_refusal
from goq.identity import Address
from goq.messages import Message
from goq.queue_spec import GoQueueSpec
from goq.sidecar.core.inbound import Inbound
from goq.sidecar.core.tracing import Tracing
from goq.sidecar.domain.peer_identity import IDENTITY_MISMATCH, identity_mismatch
from goq.sidecar.domain.records import inbound_key
from goq.sidecar.large.bodies import BodyStore, BodyWriter, body_name
from goq.sidecar.large.macs import body_mac, verify_body
from goq.sidecar.large.progress import LargeProgress
from goq.signing import UNKNOWN_KEY, Keyring, SignatureError

log = logging.getLogger("goq.sidecar.large")

Result = peer_pb2.MessageResult
MAX_CHUNK = 4 * 1024 * 1024


async def store_chunk(writer: BodyWriter, data: bytes, progress: LargeProgress) -> None:
    """Append one chunk and count it, finishing the write even if the transfer is cancelled meanwhile.

    A sender that dies cancels this transfer, but an insert already sent lands anyway: the resumed
    transfer (which waits for this one's lock) must find it stored and counted, not race it.
    """
    write = asyncio.ensure_future(writer.write(data))
    try:
        await asyncio.shield(write)
    finally:
        if not write.done():
            await asyncio.wait([write])
        if not write.cancelled() and write.exception() is None:
            progress.bytes_received += len(data)


class TransferRefusedError(Exception):
    """The transfer cannot go on: ``result`` is the answer to give."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.reason)
        self.result = result


class LargeReceiver:
    """Takes large messages from peers into this sidecar's inbound queue."""

    def __init__(
        self,
        me: Address,
        keyring: Callable[[], Keyring],
        spec: Callable[[], GoQueueSpec],
        inbound: Inbound,
        bodies: dict[bool, BodyStore | None],
        progress: LargeProgress,
        *,
        tracing: Tracing | None = None,
    ) -> None:
        self.me = me
        self.tracing = tracing
        self.keyring = keyring
        self.spec = spec
        self.inbound = inbound
        self.bodies = bodies
        self.progress = progress
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        """Per message being received: its lock and how many transfers hold or await it."""

    def receiving(self, key: str) -> bool:
        """Whether a body for ``key`` is being received now (its stored chunks are not garbage)."""
        return key in self._locks

    def transfer(self, parts: AsyncIterator[peer_pb2.TransferPart]) -> AsyncIterator[peer_pb2.TransferAck]:
        """The answers to one ``Peer.Transfer``: how many bytes are held, then the verdict."""
        if self.tracing is None:
            return self._transfer(parts)
        return self._traced(parts, self.tracing)

    async def _traced(
        self, parts: AsyncIterator[peer_pb2.TransferPart], tracing: Tracing
    ) -> AsyncIterator[peer_pb2.TransferAck]:
        """``_transfer`` in a span from the envelope to the answer (or to the sender's going away)."""
        stream = parts.__aiter__()
        first = await anext(stream, None)
        if first is None or first.WhichOneof("part") != "begin":  # refused before any message is named
            async for ack in self._transfer(_chain(first, stream)):
                yield ack
            return
        done = tracing.storing_large(first.begin.body)
        result: peer_pb2.MessageResult | None = None
        held: int | None = None
        try:
            async for ack in self._transfer(_chain(first, stream)):
                if ack.HasField("result"):
                    result = ack.result
                elif held is None:
                    held = ack.have
                yield ack
        finally:
            done(result, held or 0)

    async def _transfer(self, parts: AsyncIterator[peer_pb2.TransferPart]) -> AsyncIterator[peer_pb2.TransferAck]:
        stream = parts.__aiter__()
        first = await anext(stream, None)
        if first is None or first.WhichOneof("part") != "begin":
            yield peer_pb2.TransferAck(result=self._refuse("malformed", "a transfer must begin with the envelope"))
            return
        try:
            message = self._check(first.begin)
        except TransferRefusedError as exc:
            yield peer_pb2.TransferAck(result=exc.result)
            return
        key = inbound_key(message.source, message.id)
        async with self._exclusive(key):
            if key in self.inbound.leases.live or key in self.inbound.leases.consumed:
                self.inbound.counters.duplicates += 1
                yield peer_pb2.TransferAck(result=Result(outcome=peer_pb2.OUTCOME_DUPLICATE))
                return
            store = self.bodies[message.persistent]
            if store is None:
                reason = "this sidecar has no MongoDB for persistent messages"
                yield peer_pb2.TransferAck(result=Result(outcome=peer_pb2.OUTCOME_RETRY_LATER, reason=reason))
                return
            try:
                async for ack in self._receive(first.begin, message, key, store, stream):
                    yield ack
            except TransferRefusedError as exc:
                yield peer_pb2.TransferAck(result=exc.result)
            except GoQError as exc:  # storage out of reach: the sender tries again later
                retry = Result(outcome=peer_pb2.OUTCOME_RETRY_LATER, reason=str(exc))
                yield peer_pb2.TransferAck(result=retry)
            finally:
                self.progress.receiving.pop(key, None)

    async def _receive(
        self,
        envelope: envelope_pb2.SignedEnvelope,
        message: Message,
        key: str,
        store: BodyStore,
        stream: AsyncIterator[peer_pb2.TransferPart],
    ) -> AsyncIterator[peer_pb2.TransferAck]:
        large = message.large
        assert large is not None
        name = body_name(str(self.me), "in", key)
        writer = await store.writer(name, large.chunk_size, resume=True)
        mac = body_mac(self.keyring(), large.key_id)
        if writer.offset:
            async for data in store.read(name, 0, large.chunk_size, end=writer.offset):
                mac.update(data)
            self.progress.transfers_resumed += 1
            log.info(
                "large message %s from %s: resuming at %d of %d bytes",
                message.id,
                message.source,
                writer.offset,
                large.size,
            )
        self.progress.receiving[key] = writer.offset
        yield peer_pb2.TransferAck(have=writer.offset)
        async for part in stream:
            kind = part.WhichOneof("part")
            if kind == "end":
                break
            chunk = part.chunk
            if kind != "chunk" or chunk.offset != writer.offset:
                raise self._refused("malformed", f"expected the chunk at {writer.offset}")
            end = writer.offset + len(chunk.data)
            if end > large.size or (len(chunk.data) != large.chunk_size and end != large.size):
                raise self._refused("malformed", f"chunk at {chunk.offset} has a wrong length")
            mac.update(chunk.data)
            await store_chunk(writer, chunk.data, self.progress)
            self.progress.receiving[key] = writer.offset
        else:
            return  # the sender went away: keep what is stored, for the resumed transfer
        if writer.offset != large.size:
            raise self._refused("malformed", f"body ended at {writer.offset} of {large.size} bytes")
        try:
            verify_body(mac, large.mac, large.key_id)
        except SignatureError as exc:
            await writer.discard()
            raise self._refused(exc.reason, str(exc)) from None
        await writer.finish()
        self.inbound.large_ready.add(key)
        try:
            (result,) = await self.inbound.accept([envelope])
        finally:
            self.inbound.large_ready.discard(key)
        if result.outcome != peer_pb2.OUTCOME_ACCEPTED:
            await writer.discard()  # a duplicate's body is the one already held; any other: not kept
        yield peer_pb2.TransferAck(have=writer.offset, result=result)

    def _check(self, envelope: envelope_pb2.SignedEnvelope) -> Message:
        try:
            message = self.keyring().open_envelope(envelope.body, envelope.key_id, envelope.signature)
        except SignatureError as exc:
            refused = self._refuse(exc.reason, str(exc))
            if exc.reason == UNKNOWN_KEY:  # perhaps a new key not propagated here yet: retry, never poison at once
                refused.outcome = peer_pb2.OUTCOME_RETRY_LATER
            raise TransferRefusedError(refused) from None
        except GoQError as exc:
            raise self._refused("malformed", str(exc)) from None
        if (impostor := identity_mismatch(message.source)) is not None:  # mutual TLS: before any byte of the body
            raise self._refused(IDENTITY_MISMATCH, impostor)
        if message.destination != self.me:
            raise self._refused("wrong-destination", f"this is {self.me}, not {message.destination}")
        stale = age_refusal(message.created_at_ms, self.inbound.clock(), self.inbound.config.dedupe_window)
        if stale is not None:
            raise self._refused(*stale)
        if (forbidden := access_refusal(self.spec().allow_from, message.source, self.me)) is not None:
            raise self._refused(*forbidden)  # before any byte of the body is taken
        large = message.large
        if large is None or not 1 <= large.chunk_size <= MAX_CHUNK:
            raise self._refused("malformed", "a transfer's envelope must describe a large body")
        limit = self.spec().max_message_size
        if large.size > limit:
            detail = f"payload is {large.size} bytes; this identity's maxMessageSize is {limit}"
            raise self._refused("too-large", detail)
        return message

    def _refused(self, reason: str, detail: str) -> TransferRefusedError:
        return TransferRefusedError(self._refuse(reason, detail))

    def _refuse(self, reason: str, detail: str) -> Result:
        """Counted exactly and logged in aggregate, with the small-message refusals (``Inbound.refusals``)."""
        self.inbound.refusals.refuse(reason, f"large message: {detail}")
        return Result(outcome=peer_pb2.OUTCOME_REJECTED, reason=f"{reason}: {detail}")

    @asynccontextmanager
    async def _exclusive(self, key: str) -> AsyncIterator[None]:
        """One transfer per message at a time: a resumed one waits for the broken one to let go."""
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]


async def _chain(
    first: peer_pb2.TransferPart | None, rest: AsyncIterator[peer_pb2.TransferPart]
) -> AsyncIterator[peer_pb2.TransferPart]:
    """The parts of a transfer whose first part was read already."""
    if first is not None:
        yield first
    async for part in rest:
        yield part
