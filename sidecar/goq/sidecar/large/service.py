"""``LargeMessages``: the one object the APIs and the runtime use for large messages.

It owns the body stores, the uploader, the sender, the receiver and the clean-up of bodies whose
messages are gone (acknowledged or poisoned by the application side).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from goq.errors import ConfigError
from goq.identity import Address
from goq.messages import LargeRef
from goq.queue_spec import GoQueueSpec
from goq.retry import RetryPolicy
from goq.sidecar.adapters.peer_tls import PLAINTEXT, PeerCredentials
from goq.sidecar.adapters.resolving import Resolver
from goq.sidecar.core.inbound import Inbound
from goq.sidecar.core.tracing import Downloaded, Tracing
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.errors import NotFoundError
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.receipts import QUEUED, SendReceipt
from goq.sidecar.domain.records import Incoming
from goq.sidecar.large.bodies import BodyStore, GridFsBodies, SpillBodies, body_name
from goq.sidecar.large.outbox import LargeOutbox, MemoryLargeOutbox, MongoLargeOutbox
from goq.sidecar.large.progress import LargeProgress
from goq.sidecar.large.receiving import LargeReceiver
from goq.sidecar.large.sending import LargeSender
from goq.sidecar.large.uploading import LargeSend, Uploader
from goq.signing import Keyring

log = logging.getLogger("goq.sidecar.large")

CLEAN_EVERY = 5.0
"""Seconds between looks for bodies whose messages are gone."""
CLEAN_GRACE = 10.0
"""A complete body is not cleaned up until this many seconds old (its envelope may be on its way in)."""


@dataclass(frozen=True)
class LargeConfig:
    """See ``SidecarSettings``: ``GOQ_LARGE_CHUNK_BYTES``, ``GOQ_SPILL_DIR``, ``GOQ_SPILL_LIMIT_BYTES``."""

    chunk_size: int = 1024 * 1024
    spill_dir: Path = Path("/tmp/goq-spill")
    spill_limit: int = 4 * 1024**3
    concurrency: int = 4
    credentials: PeerCredentials = PLAINTEXT
    """Mutual TLS or plaintext to the receivers' peer ports (``goq.sidecar.adapters.peer_tls``)."""


class LargeMessages:
    """Large messages of one sidecar, both ways."""

    def __init__(
        self,
        me: Address,
        keyring: Callable[[], Keyring],
        spec: Callable[[], GoQueueSpec],
        policy: Callable[[], RetryPolicy],
        inbound: Inbound,
        resolver: Resolver,
        poisoner: Poisoner,
        counters: Counters,
        config: LargeConfig,
        db: AsyncDatabase[dict[str, Any]] | None,
        *,
        clock: Callable[[], float] = time.time,
        tracing: Tracing | None = None,
    ) -> None:
        self.me = me
        self.config = config
        self.tracing = tracing
        self.inbound = inbound
        self.progress = LargeProgress()
        self.spill = SpillBodies(config.spill_dir, config.spill_limit)
        self.gridfs = GridFsBodies(db) if db is not None else None
        self.bodies: dict[bool, BodyStore | None] = {True: self.gridfs, False: self.spill}
        outboxes: dict[bool, LargeOutbox] = {
            True: MongoLargeOutbox(db, str(me)) if db is not None else MemoryLargeOutbox(),
            False: MemoryLargeOutbox(),
        }
        self.outboxes = outboxes
        self.counters = counters
        self.uploader = Uploader(me, keyring, spec, self.bodies, self.progress, config.chunk_size, clock)
        self.sender = LargeSender(
            str(me),
            resolver,
            policy,
            poisoner,
            counters,
            self.progress,
            outboxes,
            self.bodies,
            concurrency=config.concurrency,
            clock=clock,
            credentials=config.credentials,
            keyring=keyring,
            tracing=tracing,
        )
        self.receiver = LargeReceiver(me, keyring, spec, inbound, self.bodies, self.progress, tracing=tracing)
        self._cleaner: asyncio.Task[None] | None = None

    @property
    def threshold(self) -> int:
        """Payloads above this many bytes take the large path when their size is known in advance."""
        return self.config.chunk_size

    async def start(self) -> None:
        """Resume the delivery of persistent large messages; clean up on an interval."""
        await self.spill.open()
        if self.gridfs is not None:
            await self.gridfs.open()
        recovered = await self.outboxes[True].recover()
        for item in recovered:
            self.sender.enqueue(item)
        if recovered:
            log.info("resumed %d outbound large message(s)", len(recovered))
        self._cleaner = asyncio.get_running_loop().create_task(self._clean(), name="large clean-up")

    async def stop(self) -> None:
        if self._cleaner is not None:
            self._cleaner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleaner
        await self.sender.close()
        await self.spill.close()

    # From the application.

    def check(self, request: LargeSend) -> None:
        """Refuse at once what would be refused anyway (bad destination, declared size over the limit)."""
        try:
            self.uploader.check(request)
        except Exception as exc:
            if self.tracing is not None:  # a refused send is traced, as a small one is
                self.tracing.sending_large(request)(exc)
            raise

    async def send(self, request: LargeSend, data: AsyncIterator[bytes]) -> SendReceipt:
        """Store the streamed payload, keep the message for delivery, and say it is queued."""
        if self.tracing is None:
            return await self._send(request, data)
        done = self.tracing.sending_large(request)  # before the upload: the envelope carries its traceparent
        try:
            receipt = await self._send(request, data)
        except BaseException as exc:
            done(exc)
            raise
        done(self.sender.pending.get(receipt.id) or receipt)  # held for delivery: its size and chunk count
        return receipt

    async def _send(self, request: LargeSend, data: AsyncIterator[bytes]) -> SendReceipt:
        if request.id and request.id in self.sender.pending:
            return SendReceipt(request.id, QUEUED)  # a repeated send of a message still held
        item = await self.uploader.upload(request, data)
        try:
            await self.outboxes[item.persistent].add(item)
        except BaseException:
            store = self.bodies[item.persistent]
            assert store is not None
            await store.delete(body_name(str(self.me), "out", item.id))
            raise
        self.counters.sent += 1
        self.sender.enqueue(item)
        return SendReceipt(item.id, QUEUED)

    # To the application.

    def leased(self, message_id: str) -> Incoming:
        """The leased large message ``message_id``, or ``NotFoundError``."""
        item = self.inbound.leases.leased.get(message_id)
        if item is None:
            raise NotFoundError(f"message {message_id!r} is not leased to the application")
        if item.message.large is None:
            raise NotFoundError(f"message {message_id!r} is not a large message: its payload came with it")
        return item

    async def payload(self, item: Incoming, offset: int = 0) -> AsyncIterator[bytes]:
        """A leased large message's payload from ``offset``, a chunk at a time; ``NotFoundError`` at once
        (before any byte) if its body is no longer stored (a redriven poisoned message)."""
        large = item.message.large
        store = self.bodies[item.message.persistent]
        assert large is not None
        assert store is not None
        if not await store.held(body_name(str(self.me), "in", item.key)):
            raise NotFoundError(f"the payload of message {item.id!r} is no longer stored (poisoned and redriven?)")
        if offset > large.size:
            raise ConfigError(f"offset {offset} is past the payload's {large.size} bytes")
        if self.tracing is not None:
            return self._traced(self._read(item, large, store, offset), self.tracing.downloading(item, offset))
        return self._read(item, large, store, offset)

    @staticmethod
    async def _traced(chunks: AsyncIterator[bytes], done: Downloaded) -> AsyncIterator[bytes]:
        """``chunks`` as they are, the download span ending when the application has them all or stops."""
        read = 0
        try:
            async for data in chunks:
                read += len(data)
                yield data
        except (GeneratorExit, asyncio.CancelledError):  # the application stopped reading or went away
            done(read, None)
            raise
        except BaseException as exc:
            done(read, exc)
            raise
        done(read, None)

    async def _read(self, item: Incoming, large: LargeRef, store: BodyStore, offset: int) -> AsyncIterator[bytes]:
        start = offset // large.chunk_size * large.chunk_size
        async for data in store.read(body_name(str(self.me), "in", item.key), start, large.chunk_size):
            if start < offset:
                data = data[offset - start :]
                start = offset
            start += len(data)
            yield data

    # Clean-up.

    async def _clean(self) -> None:
        while True:
            await asyncio.sleep(CLEAN_EVERY)
            try:
                await self.clean()
            except Exception as exc:
                log.warning("cleaning up large bodies failed (%s); trying again", exc)

    async def clean(self) -> int:
        """Drop received bodies whose messages are no longer held (acknowledged, poisoned); how many."""
        prefix = body_name(str(self.me), "in", "")
        now = time.time()
        dropped = 0
        for store in (self.gridfs, self.spill):
            if store is None:
                continue
            for name, completed in await store.complete(str(self.me), "in"):
                key = name[len(prefix) :]
                if key in self.inbound.leases.live or self.receiver.receiving(key) or now - completed < CLEAN_GRACE:
                    continue
                await store.delete(name)
                dropped += 1
        return dropped
