"""A steady flow of messages between two applications, for tests that change something under traffic (a key
rotation, a certificate renewal) and then check that nothing was lost.

The sender sends batches of ten numbered payloads, one batch every 50 ms, each accepted or the test fails; the
receiver takes them on one Receive stream and acknowledges each batch. ``finish`` stops sending and waits for
the rest to arrive; ``lost`` is what never did.
"""

import asyncio
import contextlib
from types import TracebackType

from goq.api.v1 import queue_manager_pb2 as pb

from .conftest import App

BATCH = 10
PAUSE = 0.05


class Traffic:
    """``async with Traffic(orders, "billing", billing) as traffic:`` flows until ``await traffic.finish()``."""

    def __init__(self, sender: App, to: str, receiver: App) -> None:
        self.sent: list[bytes] = []
        self.received: set[bytes] = set()
        self._sender, self._to, self._receiver = sender, to, receiver
        self._sending = asyncio.Event()
        self._arrived = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def waiting(self) -> int:
        """How many sent messages have not arrived yet."""
        return len(self.sent) - len(self.received)

    @property
    def lost(self) -> set[bytes]:
        return set(self.sent) - self.received

    async def __aenter__(self) -> "Traffic":
        self._sending.set()
        self._tasks = [asyncio.create_task(self._send()), asyncio.create_task(self._receive())]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._sending.clear()
        self._tasks[1].cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def finish(self, within: float = 60.0) -> None:
        """Stop sending (raising what made the sender fail, if anything), then wait up to ``within`` seconds
        for everything sent to arrive (raising what made the receiver fail, if it stopped early)."""
        self._sending.clear()
        await self._tasks[0]
        deadline = asyncio.get_running_loop().time() + within
        while self.lost and not self._tasks[1].done():
            self._arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        if self._tasks[1].done():
            await self._tasks[1]

    async def _send(self) -> None:
        while self._sending.is_set():
            batch = [f"m{len(self.sent) + i}".encode() for i in range(BATCH)]
            results = await self._sender.send(self._to, batch)
            assert all(r.HasField("accepted") for r in results), results
            self.sent.extend(batch)
            await asyncio.sleep(PAUSE)

    async def _receive(self) -> None:
        stream = self._receiver.stub.Receive(pb.ReceiveRequest(max_in_flight=2000, max_batch=500))
        async for answer in stream:
            self.received.update(m.payload for m in answer.messages)
            self._arrived.set()
            await self._receiver.stub.Ack(pb.AckRequest(ids=[m.id for m in answer.messages]))
