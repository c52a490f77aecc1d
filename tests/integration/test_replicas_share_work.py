"""Replicas of a receiving identity share its work: real sidecar processes, real MongoDB, and a DNS responder
that answers for the identity's headless Service with the addresses of the replicas the test calls ready,
as CoreDNS does in a cluster (``goq.devenv.node.dns_server``, the local cluster's own)."""

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.node.dns_server import DnsServer
from goq.devenv.ports import free_ports
from goq.devenv.sidecars import SidecarProcess, hmac_keys
from goq.names import PORT_PEER

from .conftest import KEY, App

SERVICE = "goq-billing.default.svc.cluster.local"


def payload(number: int) -> bytes:
    return f"{number:08d}".encode().ljust(256, b".")


class Replica:
    """One ``billing`` sidecar process and its application, which receives (and, if ``acks``, acknowledges)."""

    def __init__(self, sidecar: SidecarProcess) -> None:
        self.sidecar = sidecar
        self.app = App(sidecar)
        self.got: list[int] = []
        self.first_at: float | None = None
        self.task: asyncio.Task[None] | None = None

    def consume(self, seen: set[int], grown: asyncio.Event, *, acks: bool = True) -> None:
        self.task = asyncio.create_task(self._consume(seen, grown, acks))

    async def _consume(self, seen: set[int], grown: asyncio.Event, acks: bool) -> None:
        stream = self.app.stub.Receive(pb.ReceiveRequest(max_in_flight=2000, max_batch=500))
        try:
            async for batch in stream:
                if self.first_at is None and batch.messages:
                    self.first_at = time.monotonic()
                numbers = [int(m.payload[:8]) for m in batch.messages]
                self.got += numbers
                if acks:
                    seen.update(numbers)
                    grown.set()
                    await self.app.stub.Ack(pb.AckRequest(ids=[m.id for m in batch.messages]))
        except grpc.aio.AioRpcError:
            pass  # its sidecar was killed


class Cluster:
    """``orders`` and replicas of ``billing``, each on a loopback address of its own with the peer port,
    found through the DNS responder; ``ready`` is what the responder answers for billing's Service."""

    def __init__(self, workdir: Path, env: dict[str, str], dns: DnsServer) -> None:
        self.workdir = workdir
        self.env = env
        self.dns = dns
        prefix = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}"
        self.hosts = iter(f"{prefix}.{n}" for n in range(1, 255))
        self.ready: list[str] = []
        self.started: list[SidecarProcess] = []
        self.replicas: dict[str, Replica] = {}
        self.seen: set[int] = set()
        """What the applications of replicas that acknowledge received."""
        self.grown = asyncio.Event()

    def lookup(self, name: str) -> list[str] | None:
        return list(self.ready) if name == SERVICE else None

    async def sidecar(self, identity: str, instance: str) -> SidecarProcess:
        grpc_port, health_port, rest_port = free_ports(3)
        sidecar = SidecarProcess(
            identity,
            self.workdir,
            dict(self.env),
            instance=instance,
            host=next(self.hosts),
            peer_port=PORT_PEER,
            grpc_port=grpc_port,
            health_port=health_port,
            rest_port=rest_port,
        )
        self.started.append(sidecar)
        await asyncio.to_thread(sidecar.start)
        return sidecar

    async def replica(self, instance: str, *, acks: bool = True) -> Replica:
        """A ``billing`` replica started, consuming, and then listed in DNS (ready, as Endpoints would)."""
        replica = self.replicas[instance] = Replica(await self.sidecar("billing", instance))
        replica.consume(self.seen, self.grown, acks=acks)
        self.ready.append(replica.sidecar.host)
        return replica

    async def all_seen(self, expected: set[int], within: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not expected <= self.seen:
                    self.grown.clear()
                    await self.grown.wait()

    def split(self) -> dict[str, int]:
        return {name: len(set(r.got)) for name, r in self.replicas.items()}


@pytest.fixture
async def cluster(mongo_uri: str, database: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    made: list[Cluster] = []

    def lookup(name: str) -> list[str] | None:
        return made[0].lookup(name) if made else None

    dns = DnsServer(lookup)
    await dns.start()
    env = {
        "GOQ_MONGODB_URI": mongo_uri,
        "GOQ_MONGODB_DATABASE": database,
        "GOQ_HMAC_KEYS": hmac_keys({"k1": KEY}),
        "GOQ_RESOLVER": "dns",
        "GOQ_DNS_SERVER": dns.address,
        "GOQ_HEARTBEAT": "300ms",
        "GOQ_ADOPT_AFTER": "1s",
    }
    made.append(Cluster(tmp_path / "sidecars", env, dns))
    (tmp_path / "sidecars").mkdir()
    try:
        yield made[0]
    finally:
        for replica in made[0].replicas.values():
            if replica.task is not None:
                replica.task.cancel()
            await replica.app.close()
        for sidecar in made[0].started:
            await asyncio.to_thread(sidecar.kill)
        await dns.stop()


async def flow(app: App, start: int, count: int, *, chunk: int = 25, pause: float = 0.05) -> set[int]:
    """Send ``count`` numbered messages to billing, ``chunk`` at a time with a pause between: the numbers
    accepted."""
    accepted: set[int] = set()
    for first in range(start, start + count, chunk):
        numbers = list(range(first, min(first + chunk, start + count)))
        results = await app.send("billing", [payload(n) for n in numbers])
        accepted.update(n for n, r in zip(numbers, results, strict=True) if r.WhichOneof("result") == "accepted")
        await asyncio.sleep(pause)
    return accepted


async def later(seconds: float, action: Callable[[], Awaitable[object]]) -> None:
    await asyncio.sleep(seconds)
    await action()


async def test_three_replicas_each_take_a_fair_share_of_three_thousand_messages(cluster: Cluster) -> None:
    for n in range(3):
        await cluster.replica(f"billing-{n}")
    orders = App(await cluster.sidecar("orders", "orders-0"))
    try:
        results = await orders.send("billing", [payload(n) for n in range(3000)])
        assert all(r.WhichOneof("result") == "accepted" for r in results)
        await cluster.all_seen(set(range(3000)), within=60)
    finally:
        await orders.close()
    split = cluster.split()
    print(f"split of 3,000 over three replicas: {split}")
    assert cluster.seen == set(range(3000))
    assert all(count >= 600 for count in split.values()), f"not a fair share (each at least 20%): {split}"


async def test_a_replica_added_mid_flow_receives_within_seconds_and_nothing_is_lost(cluster: Cluster) -> None:
    for n in range(2):
        await cluster.replica(f"billing-{n}")
    orders = App(await cluster.sidecar("orders", "orders-0"))
    added: list[float] = []

    async def add_third() -> None:
        await cluster.replica("billing-2")  # listed in DNS as soon as it is ready
        added.append(time.monotonic())

    try:
        sending = asyncio.create_task(flow(orders, 0, 2000))
        await later(2.0, add_third)
        accepted = await sending
        await cluster.all_seen(accepted, within=60)
    finally:
        await orders.close()
    third = cluster.replicas["billing-2"]
    assert third.first_at is not None, f"the added replica got nothing: {cluster.split()}"
    waited = third.first_at - added[0]
    print(f"the added replica received after {waited:.2f} s; split {cluster.split()}")
    assert waited < 6.0
    assert len(accepted) == 2000
    assert accepted <= cluster.seen


async def test_a_replica_killed_mid_flow_loses_nothing_its_messages_are_adopted(cluster: Cluster) -> None:
    await cluster.replica("billing-0")
    await cluster.replica("billing-1")
    doomed = await cluster.replica("billing-2", acks=False)  # holds what it gets, leased, never acknowledged
    orders = App(await cluster.sidecar("orders", "orders-0"))

    async def kill() -> None:
        assert doomed.got, "the replica to be killed got nothing before it"
        await asyncio.to_thread(doomed.sidecar.kill)  # kill -9
        await asyncio.sleep(1.0)  # as Endpoints lag behind a dead pod
        cluster.ready.remove(doomed.sidecar.host)

    try:
        sending = asyncio.create_task(flow(orders, 0, 2000))
        await later(3.0, kill)
        accepted = await sending
        await cluster.all_seen(accepted, within=90)
    finally:
        await orders.close()
    held = set(doomed.got)
    print(f"killed replica held {len(held)} unacknowledged; split {cluster.split()}")
    assert len(accepted) == 2000
    assert accepted - cluster.seen == set(), "lost"
    assert held <= cluster.seen  # what it held was delivered by the live replicas after they adopted it
    adopters = [r.sidecar.log() for name, r in cluster.replicas.items() if name != "billing-2"]
    assert any("from stopped instance(s) billing-2" in log for log in adopters)
