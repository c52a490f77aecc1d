"""Sidecar processes and an application-side client for the delivery tests."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pymongo import AsyncMongoClient

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc
from goq.devenv.replica_set import MongoReplicaSet
from goq.devenv.sidecars import SidecarProcess, hmac_keys, local_sidecars
from goq.sidecar.adapters.stores.mongo import MongoStore

KEY = b"k" * 32


class App:
    """What an application does through its sidecar's gRPC API, in the shapes tests need."""

    def __init__(self, sidecar: SidecarProcess) -> None:
        self.sidecar = sidecar
        self.channel = grpc.aio.insecure_channel(sidecar.grpc_target)
        self.stub = queue_manager_pb2_grpc.QueueManagerStub(self.channel)

    async def send(
        self, to: str, payloads: list[bytes], *, persistent: bool = True, batch: int = 500
    ) -> list[pb.SendResult]:
        """Send on one stream in batches; every result, in order."""

        async def batches() -> AsyncIterator[pb.SendBatch]:
            for start in range(0, len(payloads), batch):
                chunk = payloads[start : start + batch]
                yield pb.SendBatch(messages=[pb.SendRequest(to=to, payload=p, persistent=persistent) for p in chunk])

        results: list[pb.SendResult] = []
        async for answer in self.stub.SendStream(batches()):
            results.extend(answer.results)
        return results

    async def receive(
        self, count: int, *, within: float = 60.0, ack: bool = True, distinct: bool = False
    ) -> list[pb.ReceivedMessage]:
        """Receive until ``count`` messages (``distinct``: different ids) arrived or ``within`` seconds
        passed; acknowledge them."""
        got: list[pb.ReceivedMessage] = []
        ids: set[str] = set()
        stream = self.stub.Receive(pb.ReceiveRequest(max_in_flight=2000, max_batch=500))

        async def collect() -> None:
            async for batch in stream:
                got.extend(batch.messages)
                ids.update(m.id for m in batch.messages)
                if ack:
                    await self.stub.Ack(pb.AckRequest(ids=[m.id for m in batch.messages]))
                if (len(ids) if distinct else len(got)) >= count:
                    return

        try:
            await asyncio.wait_for(collect(), within)
        except TimeoutError:
            pass
        finally:
            stream.cancel()
        return got

    async def quiet(self, seconds: float) -> list[pb.ReceivedMessage]:
        """Whatever arrives within ``seconds`` (expected: nothing)."""
        return await self.receive(10**9, within=seconds)

    async def stats(self) -> pb.StatsResponse:
        response: pb.StatsResponse = await self.stub.Stats(pb.StatsRequest())
        return response

    async def close(self) -> None:
        await self.channel.close()


@pytest.fixture
def database() -> str:
    """A database of its own for each test, so tests never see each other's messages."""
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sidecars(mongo_uri: str, database: str, tmp_path: Path) -> Iterator[Callable[..., dict[str, SidecarProcess]]]:
    """Start sidecars by identity (``sidecars("orders", "billing", GOQ_LEASE="1s")``); all stop at the end."""
    started: list[SidecarProcess] = []

    def start(
        *identities: str, start: bool = True, namespace: str = "default", **env: str
    ) -> dict[str, SidecarProcess]:
        common: dict[str, Any] = {
            "GOQ_MONGODB_URI": mongo_uri,
            "GOQ_MONGODB_DATABASE": database,
            "GOQ_HMAC_KEYS": hmac_keys({"k1": KEY}),
            **env,
        }
        group = local_sidecars(list(identities), tmp_path / "sidecars", common, namespace=namespace)
        for sidecar in group.values():
            started.append(sidecar)
            if start:
                sidecar.start()
        return group

    try:
        yield start
    finally:
        for sidecar in started:
            sidecar.kill()


@pytest.fixture
async def apps() -> AsyncIterator[Callable[[SidecarProcess], App]]:
    """Application clients for sidecars; closed at the end."""
    made: list[App] = []

    def make(sidecar: SidecarProcess) -> App:
        made.append(App(sidecar))
        return made[-1]

    yield make
    for app in made:
        await app.close()


Doc = dict[str, Any]
OpenStore = Callable[..., Awaitable[MongoStore]]


@pytest.fixture
async def mongo_client(mongo_uri: str) -> AsyncIterator[AsyncMongoClient[Doc]]:
    async with AsyncMongoClient[Doc](mongo_uri) as connected:
        yield connected


@pytest.fixture
async def open_store(mongo_client: AsyncMongoClient[Doc], database: str) -> AsyncIterator[OpenStore]:
    """Open billing's persistent store as a sidecar instance does (``open_store("billing-1")``); a second
    store of the same instance name is that instance restarted."""
    opened: list[MongoStore] = []

    async def start(instance: str = "billing-0") -> MongoStore:
        store = MongoStore(mongo_client, database, "billing.default", instance, dedupe_window=3600, stale_after=0.0)
        await store.open()
        opened.append(store)
        return store

    yield start
    for store in opened:
        await store.inbox.close()
        await store.outbox.close()


@pytest.fixture
def replica_set(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MongoReplicaSet]:
    """A three-member replica set of the test's own, stopped at the end. A test module may set
    ``ELECTION_TIMEOUT`` (seconds) for slower elections than the set's quick default. To run the sidecars on it,
    a module overrides ``mongo_uri`` with the set's ``uri``."""
    timeout = getattr(request.module, "ELECTION_TIMEOUT", None)
    options = {} if timeout is None else {"election_timeout_ms": int(timeout * 1000)}
    members = MongoReplicaSet(tmp_path / "replica-set", **options)
    members.start()
    try:
        yield members
    finally:
        members.stop()
