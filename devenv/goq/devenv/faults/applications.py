"""The applications of a fault run: one sends a mixed load through the sender's sidecar and writes every
answer in a ledger; the other receives and acknowledges at the receiver, through every fault.

Every message's payload is a token unique in the run, so a delivery is matched to its send whatever id
the sidecar gave it. An answer counts as a refusal only when the same sidecar process gave it; an answer
lost with a killed process (or never given: timed out, connection refused) is ``unknown``.
"""

import asyncio
import base64
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
import grpc

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc
from goq.devenv.faults.topology import Side

Outcome = Literal["accepted", "refused", "unknown"]
RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
NOT_THE_SIDECARS_ANSWER = ("failed to connect", "connection refused", "socket closed", "connection reset")
"""Words of gRPC's own UNAVAILABLE when no sidecar answered (it is down, or the channel reconnects)."""


@dataclass
class Sent:
    """One message the sending application tried to send, and what it was told."""

    token: str
    route: str
    """``unary``, ``stream`` or ``rest``, with ``+id`` when the application gave the id."""
    persistent: bool
    outcome: Outcome = "unknown"
    detail: str = ""


@dataclass
class Ledger:
    """Every send and every delivery of a run, by token."""

    sent: dict[str, Sent] = field(default_factory=dict)
    deliveries: Counter[str] = field(default_factory=Counter)


class SendingApp:
    """Sends a seeded mix through ``side``'s sidecar to ``to``: unary ``Send`` and ``SendStream`` batches,
    with and without application ids, REST ``POST /v1/messages``; mostly persistent, some transient."""

    def __init__(
        self, side: Side, to: str, ledger: Ledger, seed: int, *, transient_share: float = 0.1, timeout: float = 15.0
    ) -> None:
        self.side, self.to, self.ledger = side, to, ledger
        self.rng = random.Random(f"load-{seed}")
        self.prefix = f"s{seed}"
        self.transient_share = transient_share
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(side.sidecar.grpc_target, options=RECONNECT)
        self.stub = queue_manager_pb2_grpc.QueueManagerStub(self.channel)
        self.http: aiohttp.ClientSession | None = None
        self._next = 0

    async def close(self) -> None:
        await self.channel.close()
        if self.http is not None:
            await self.http.close()

    async def run(self, stop: asyncio.Event, workers: int = 3, pause: float = 0.05) -> None:
        """Send until ``stop`` is set, from ``workers`` concurrent loops."""

        async def loop() -> None:
            while not stop.is_set():
                await self.send_some()
                await asyncio.sleep(self.rng.uniform(0, 2 * pause))

        await asyncio.gather(*(loop() for _ in range(workers)))

    async def send_some(self) -> None:
        """One send of a route chosen at random."""
        route = self.rng.choice(("unary", "unary+id", "stream", "stream+id", "rest", "rest+id"))
        if route.startswith("stream"):
            count = self.rng.randint(2, 20)
            await self.stream([self.new(route) for _ in range(count)])
        elif route.startswith("unary"):
            await self.unary(self.new(route))
        else:
            await self.rest(self.new(route))

    def new(self, route: str, persistent: bool | None = None) -> Sent:
        """A message to send by ``route``, in the ledger; persistent or not at random unless told."""
        self._next += 1
        token = f"{self.prefix}-{self._next:06d}"
        if persistent is None:
            persistent = self.rng.random() >= self.transient_share
        sent = Sent(token, route, persistent)
        self.ledger.sent[token] = sent
        return sent

    def request(self, sent: Sent) -> pb.SendRequest:
        return pb.SendRequest(
            to=self.to,
            payload=sent.token.encode(),
            persistent=sent.persistent,
            id=f"app-{sent.token}" if sent.route.endswith("+id") else "",
        )

    def _settled(self, epoch: int, error: grpc.aio.AioRpcError | None = None) -> bool:
        """Whether an error came from the process the request went to: up then and still the same one."""
        same = epoch % 2 == 0 and self.side.epoch == epoch
        if error is None or not same:
            return same
        if error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            return False
        details = (error.details() or "").lower()
        return not (error.code() == grpc.StatusCode.UNAVAILABLE and any(w in details for w in NOT_THE_SIDECARS_ANSWER))

    async def unary(self, sent: Sent) -> None:
        epoch = self.side.epoch
        try:
            answer = await self.stub.Send(self.request(sent), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            sent.outcome = "refused" if self._settled(epoch, exc) else "unknown"
            sent.detail = f"{exc.code().name}: {(exc.details() or '')[:300]}"
            return
        sent.outcome, sent.detail = "accepted", answer.state

    async def stream(self, batch: list[Sent]) -> None:
        """One ``SendStream`` call with one batch: each message has its own answer."""

        async def requests() -> AsyncIterator[pb.SendBatch]:
            yield pb.SendBatch(messages=[self.request(s) for s in batch])

        results: list[pb.SendResult] = []
        try:
            async for answer in self.stub.SendStream(requests(), timeout=self.timeout):
                results.extend(answer.results)
        except grpc.aio.AioRpcError as exc:
            for sent in batch[len(results) :]:
                sent.outcome, sent.detail = "unknown", f"stream ended: {exc.code().name}: {exc.details()}"
        for sent, result in zip(batch, results, strict=False):
            if result.WhichOneof("result") == "accepted":
                sent.outcome, sent.detail = "accepted", result.accepted.state
            else:
                sent.outcome = "refused"  # the sidecar's own answer for this message, whatever came after
                sent.detail = f"{result.error.code}: {result.error.message[:300]}"

    async def rest(self, sent: Sent) -> None:
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        body: dict[str, object] = {
            "to": self.to,
            "payload": base64.b64encode(sent.token.encode()).decode(),
            "persistent": sent.persistent,
        }
        if sent.route.endswith("+id"):
            body["id"] = f"app-{sent.token}"
        epoch = self.side.epoch
        try:
            async with self.http.post(f"{self.side.sidecar.rest_url}/v1/messages", json=body) as response:
                text = await response.text()
                if response.status == 202:
                    sent.outcome, sent.detail = "accepted", text
                else:
                    sent.outcome = "refused" if self._settled(epoch) else "unknown"
                    sent.detail = f"{response.status}: {text[:200]}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            sent.outcome, sent.detail = "unknown", f"{type(exc).__name__}: {exc}"


class ReceivingApp:
    """Receives at ``side``'s sidecar and acknowledges every batch; reconnects when the sidecar is gone."""

    def __init__(self, side: Side, ledger: Ledger) -> None:
        self.side, self.ledger = side, ledger
        self.channel = grpc.aio.insecure_channel(side.sidecar.grpc_target, options=RECONNECT)
        self.stub = queue_manager_pb2_grpc.QueueManagerStub(self.channel)

    async def run(self) -> None:
        """Receive until cancelled."""
        while True:
            stream = self.stub.Receive(pb.ReceiveRequest(max_in_flight=1000, max_batch=200))
            try:
                async for batch in stream:
                    self.ledger.deliveries.update(m.payload.decode(errors="replace") for m in batch.messages)
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await self.stub.Ack(pb.AckRequest(ids=[m.id for m in batch.messages]), timeout=10)
            except grpc.aio.AioRpcError:
                pass
            finally:
                stream.cancel()
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.channel.close()


async def poison_reasons(side: Side) -> dict[str, str]:
    """The tokens in ``side``'s poison queue (``ListPoisoned``), with their reasons."""
    async with grpc.aio.insecure_channel(side.sidecar.grpc_target) as channel:
        stub = queue_manager_pb2_grpc.QueueManagerStub(channel)
        answer = await stub.ListPoisoned(pb.ListPoisonedRequest(limit=1_000_000), timeout=15)
    return {m.payload.decode(errors="replace"): f"{m.reason}: {m.detail}".strip(": ") for m in answer.messages}
