"""An election in a three-member replica set never loses an accepted persistent message.

Two sidecar processes share a real three-member replica set (``MongoReplicaSet``) while a steady flow of
persistent messages runs between them: unary sends with and without the application's id, and batches on
one ``SendStream``. Meanwhile the primary is stepped down, or killed with ``kill -9`` and restarted later.
Afterwards every message whose send was accepted arrived at the receiving application or is in the poison
queue with a reason; no refused message arrived.
"""

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.faults import RECEIVER, SENDER, Fault, RunConfig, run_seed, table
from goq.devenv.faults.replica import replica_set_kinds, three_members
from goq.devenv.replica_set import MongoReplicaSet
from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]

PATIENT = json.dumps({"maxAttempts": 1000, "initialBackoff": "100ms", "maxBackoff": "500ms"})
"""Retries that outlast any election here: a message is delivered, never poisoned for running out."""
ATTEMPT_TIMEOUT = 1.0
STORE_TIMEOUT = 2.0
"""The fault harness's short timeouts (``RunConfig``): a killed primary outlasts them."""
STREAM_BATCH = 10
PAUSE = 0.02
"""Seconds each sender waits between its sends: a steady flow a 2-core machine keeps up with."""


@pytest.fixture
def mongo_uri(replica_set: MongoReplicaSet) -> str:
    """The sidecars' MongoDB is the replica set (instead of the session's single server)."""
    return replica_set.uri


@dataclass
class Flow:
    """What the senders were told, and what the receiving application got."""

    accepted: set[bytes] = field(default_factory=set)
    refused: dict[bytes, str] = field(default_factory=dict)
    refused_at: list[float] = field(default_factory=list)
    slowest: float = 0.0
    """The longest a send took to be answered, accepted or refused."""
    delivered: Counter[bytes] = field(default_factory=Counter)

    def answered(self, payload: bytes, started: float, refusal: str | None) -> None:
        now = time.monotonic()
        self.slowest = max(self.slowest, now - started)
        if refusal is None:
            self.accepted.add(payload)
        else:
            self.refused[payload] = refusal
            self.refused_at.append(now)


async def send_unary(orders: App, flow: Flow, stop: asyncio.Event, prefix: str, *, with_id: bool) -> None:
    for n in itertools.count():
        if stop.is_set():
            return
        payload = f"{prefix}-{n}".encode()
        started = time.monotonic()
        request = pb.SendRequest(to="billing", payload=payload, id=payload.decode() if with_id else "")
        try:
            await orders.stub.Send(request)
        except grpc.aio.AioRpcError as exc:
            flow.answered(payload, started, f"{exc.code().name}: {exc.details()}")
        else:
            flow.answered(payload, started, None)
        await asyncio.sleep(PAUSE)


async def send_batches(orders: App, flow: Flow, stop: asyncio.Event, prefix: str) -> None:
    """Batches on one long ``SendStream``, as a busy application sends."""
    queue: asyncio.Queue[list[bytes] | None] = asyncio.Queue(1)

    async def batches() -> AsyncIterator[pb.SendBatch]:
        while (payloads := await queue.get()) is not None:
            yield pb.SendBatch(messages=[pb.SendRequest(to="billing", payload=p) for p in payloads])

    answers = orders.stub.SendStream(batches())
    for n in itertools.count():
        if stop.is_set():
            break
        payloads = [f"{prefix}-{n}-{i}".encode() for i in range(STREAM_BATCH)]
        started = time.monotonic()
        await queue.put(payloads)
        answer: pb.SendBatchResult = await answers.read()
        for payload, result in zip(payloads, answer.results, strict=True):
            refusal = None if result.WhichOneof("result") == "accepted" else result.error.message
            flow.answered(payload, started, refusal)
        await asyncio.sleep(PAUSE)
    await queue.put(None)
    assert await answers.read() == grpc.aio.EOF


async def consume(billing: App, flow: Flow) -> None:
    """Receive and acknowledge everything, for as long as it runs."""
    stream = billing.stub.Receive(pb.ReceiveRequest(max_in_flight=2000, max_batch=500))
    try:
        async for batch in stream:
            flow.delivered.update(m.payload for m in batch.messages)
            await billing.stub.Ack(pb.AckRequest(ids=[m.id for m in batch.messages]))
    finally:
        stream.cancel()


async def poisoned(*apps: App) -> dict[bytes, str]:
    """Every message in the poison queues of ``apps``, with its reason."""
    found: dict[bytes, str] = {}
    for app in apps:
        listed = await app.stub.ListPoisoned(pb.ListPoisonedRequest(limit=10_000))
        found.update((m.payload, m.reason) for m in listed.messages)
    return found


async def run_flow(
    sidecars: Sidecars, apps: Apps, name: str, fault: Callable[[], Awaitable[None]], **env: str
) -> tuple[Flow, dict[bytes, str], float]:
    """Send steadily, inject ``fault`` two seconds in, keep sending two seconds after it ended, and wait until
    every accepted message arrived or was poisoned. Then the sender is killed and started again: a refused
    send whose write reached MongoDB after all would now be delivered from the outbox. Returns the flow,
    the poisoned and the fault's time."""
    group = sidecars("orders", "billing", GOQ_RETRY_POLICY=PATIENT, **env)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    flow, stop = Flow(), asyncio.Event()
    receiving = asyncio.create_task(consume(billing, flow))
    sending = [
        asyncio.create_task(send_unary(orders, flow, stop, f"{name}-generated", with_id=False)),
        asyncio.create_task(send_unary(orders, flow, stop, f"{name}-with-id", with_id=True)),
        asyncio.create_task(send_batches(orders, flow, stop, f"{name}-stream")),
    ]
    await asyncio.sleep(2.0)
    fault_at = time.monotonic()
    await fault()
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*sending)
    deadline = time.monotonic() + 60
    kept: dict[bytes, str] = {}
    while time.monotonic() < deadline:
        kept = await poisoned(orders, billing)
        if flow.accepted <= set(flow.delivered) | set(kept):
            break
        await asyncio.sleep(0.5)
    await asyncio.to_thread(group["orders"].kill)
    await asyncio.to_thread(group["orders"].start)
    await asyncio.sleep(3.0)  # what the restarted sender finds in its outbox, and late duplicates, arrive now
    receiving.cancel()
    await asyncio.gather(receiving, return_exceptions=True)
    return flow, kept, fault_at


def report(name: str, flow: Flow, kept: dict[bytes, str], fault_at: float) -> list[bytes]:
    """Print the scenario's figures; the accepted messages neither delivered nor poisoned."""
    lost = sorted(flow.accepted - set(flow.delivered) - set(kept))
    duplicates = sum(count - 1 for count in flow.delivered.values())
    window = (
        f"refusals from {min(flow.refused_at) - fault_at:+.1f} s to {max(flow.refused_at) - fault_at:+.1f} s "
        "after the fault"
        if flow.refused_at
        else "no refusals"
    )
    print(
        f"\n{name}: accepted {len(flow.accepted)}, refused {len(flow.refused)}, delivered {len(flow.delivered)}, "
        f"poisoned {len(kept)}, duplicates {duplicates}, lost {len(lost)}; {window}; "
        f"slowest answer {flow.slowest:.1f} s"
    )
    for payload, reason in sorted(flow.refused.items())[:5]:
        print(f"  refused {payload.decode()}: {reason}")
    for payload, reason in sorted(kept.items())[:5]:
        print(f"  poisoned {payload.decode()}: {reason}")
    for payload in lost[:20]:
        print(f"  lost {payload.decode()}")
    return lost


def check(flow: Flow, kept: dict[bytes, str], lost: list[bytes]) -> None:
    assert lost == []
    refused_delivered = {p.decode(): flow.refused[p] for p in flow.refused if p in flow.delivered}
    assert refused_delivered == {}, "refused sends were delivered"
    assert all(kept.values()), f"poisoned without a reason: {kept}"
    assert len(flow.accepted) > 300, "the flow was too thin to show anything"


async def test_a_stepped_down_primary_loses_no_accepted_message(
    replica_set: MongoReplicaSet, sidecars: Sidecars, apps: Apps
) -> None:
    elected: list[int] = []

    async def step_down() -> None:
        old = replica_set.primary()
        elected.append(await asyncio.to_thread(replica_set.step_down))
        assert elected[-1] != old

    flow, kept, fault_at = await run_flow(sidecars, apps, "step-down", step_down)
    check(flow, kept, report("primary stepped down", flow, kept, fault_at))


async def test_a_killed_primary_loses_no_accepted_message(
    replica_set: MongoReplicaSet, sidecars: Sidecars, apps: Apps
) -> None:
    async def kill_and_restart() -> None:
        killed = await asyncio.to_thread(replica_set.kill_primary)
        elected = await asyncio.to_thread(replica_set.wait_for_primary, 30)
        assert elected != killed
        await asyncio.sleep(4.0)  # sending on with two members of three
        await asyncio.to_thread(replica_set.restart_member, killed)

    flow, kept, fault_at = await run_flow(sidecars, apps, "kill", kill_and_restart)
    check(flow, kept, report("primary killed -9, restarted 4 s later", flow, kept, fault_at))


async def test_sends_refused_during_a_longer_election_never_arrive_and_accepted_ones_are_not_lost(
    replica_set: MongoReplicaSet, sidecars: Sidecars, apps: Apps
) -> None:
    """With ``GOQ_STORE_TIMEOUT`` shorter than the election, writes in flight fail: some of them may have
    reached the old primary's majority (or the new primary) after all. Those sends are refused, and must
    never be delivered, not even by a restarted sender."""

    async def kill_and_restart() -> None:
        killed = await asyncio.to_thread(replica_set.kill_primary)
        await asyncio.to_thread(replica_set.wait_for_primary, 30)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(replica_set.restart_member, killed)

    flow, kept, fault_at = await run_flow(sidecars, apps, "short", kill_and_restart, GOQ_STORE_TIMEOUT="1s")
    check(flow, kept, report("primary killed -9 with GOQ_STORE_TIMEOUT=1s", flow, kept, fault_at))
    assert flow.refused, "no send was refused: the election was shorter than the store timeout"


async def test_a_seeded_fault_run_on_a_replica_set_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fault harness on one shared three-member replica set: a step-down and a killed primary, plus
    two faults drawn from the seed (sidecar kills, the whole set killed or stopped, more elections)."""
    config = replica_set_run(seed=7, faults=4)
    result = await run_seed(config, tmp_path)
    with capsys.disabled():
        print("\n" + table([result]))
    assert result.ok, result.explain()
    assert result.accepted > 50, f"too little load to judge: {result}"


@pytest.mark.timeout(0)  # bounded below by the number of seeds asked for (a marker added at run time is not read)
async def test_many_seeds_on_a_replica_set_lose_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The long run on a replica set: ``--fault-seeds N`` seeds of six faults each."""
    seeds = int(request.config.getoption("--fault-seeds"))
    if seeds <= 0:
        pytest.skip("the long fault run: give --fault-seeds N or GOQ_FAULT_SEEDS=N")
    async with asyncio.timeout(seeds * 180):
        results = [
            await run_seed(replica_set_run(seed, 6), tmp_path / f"seed-{seed}") for seed in range(200, 200 + seeds)
        ]
    with capsys.disabled():
        print("\n" + table(results))
    failed = [r.explain() for r in results if not r.ok]
    assert not failed, "\n".join(failed)


def replica_set_run(seed: int, faults: int) -> RunConfig:
    """A seed on one shared replica set, whose plan holds at least a step-down and a killed primary."""
    kinds = replica_set_kinds(ATTEMPT_TIMEOUT, STORE_TIMEOUT)
    by_name = {kind.name: kind for kind in kinds}
    first = (
        Fault(by_name["primary stepped down"], RECEIVER, 0.0, pause=0.5),
        Fault(by_name["kill -9 primary"], SENDER, max(by_name["kill -9 primary"].lengths), pause=0.5),
    )
    return RunConfig(
        seed,
        mode="shared",
        faults=faults,
        first=first,
        kinds=kinds,
        attempt_timeout=ATTEMPT_TIMEOUT,
        store_timeout=STORE_TIMEOUT,
        backend=three_members,
    )
