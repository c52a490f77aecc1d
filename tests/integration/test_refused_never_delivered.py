"""A send refused because MongoDB could not make it durable is never delivered, not even after restarts.

A write the client sees fail may have landed all the same: a three-member replica set whose two secondaries
are killed takes the sidecars' inserts on its primary, then fails their majority wait (``GOQ_STORE_TIMEOUT``).
The sender refuses the send, the receiver answers "retry later"; when the secondaries are back, those
documents are majority-committed. Each sidecar withdraws the documents of its failed writes
(``sidecar/adapters/stores/mongo/withdrawals.py``, ``_Withdrawals``), so the restarted sender has nothing to
resume and the restarted receiver nothing to hand out.
"""

import asyncio
import json
import time
from collections.abc import Callable

import grpc
import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.replica_set import MongoReplicaSet
from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]

PATIENT = json.dumps({"maxAttempts": 1000, "initialBackoff": "100ms", "maxBackoff": "500ms"})


@pytest.fixture
def mongo_uri(replica_set: MongoReplicaSet) -> str:
    return replica_set.uri


async def send_one(orders: App, payload: bytes, *, with_id: bool) -> str | None:
    """The refusal (status and text), or None if the send was accepted."""
    request = pb.SendRequest(to="billing", payload=payload, id=payload.decode() if with_id else "")
    try:
        await orders.stub.Send(request, timeout=30)
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    return None


def withdrawn(sidecar: SidecarProcess) -> bool:
    """Whether every withdrawal ``sidecar`` tried has been confirmed (its last word on them)."""
    lines = [line for line in sidecar.log().splitlines() if "document(s) of failed writes" in line]
    return not lines or "withdrew" in lines[-1]


async def test_sends_refused_while_writes_land_without_a_majority_are_never_delivered_after_restarts(
    replica_set: MongoReplicaSet, sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", GOQ_STORE_TIMEOUT="1s", GOQ_RETRY_POLICY=PATIENT)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    assert await send_one(orders, b"before", with_id=False) is None
    assert [m.payload for m in await billing.receive(1)] == [b"before"]

    primary = replica_set.primary()
    secondaries = [i for i in range(3) if i != primary]
    for index in secondaries:
        await asyncio.to_thread(replica_set.kill_member, index)
    payloads = [f"refused-{kind}-{n}".encode() for kind in ("generated", "with-id") for n in range(5)]
    answers = await asyncio.gather(*(send_one(orders, p, with_id=b"with-id" in p) for p in payloads))
    refused = {p for p, answer in zip(payloads, answers, strict=True) if answer is not None}
    assert refused, f"no send was refused while two of three members were down: {answers}"
    assert all(a is None or a.startswith("UNAVAILABLE") for a in answers), answers

    for index in secondaries:
        await asyncio.to_thread(replica_set.restart_member, index)
    await asyncio.to_thread(replica_set.wait_for_primary, 60)
    # The withdrawals are tried again until a majority confirms them: wait until each sidecar says so.
    deadline = time.monotonic() + 60
    while not all(withdrawn(group[name]) for name in ("orders", "billing")):
        assert time.monotonic() < deadline, "the failed writes were not withdrawn within 60 s"
        await asyncio.sleep(0.5)

    for name in ("orders", "billing"):  # a restart recovers what the store holds
        await asyncio.to_thread(group[name].kill)
        await asyncio.to_thread(group[name].start)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    assert await send_one(orders, b"after", with_id=False) is None
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while b"after" not in got and time.monotonic() < deadline:
        got += [m.payload for m in await billing.receive(1, within=5)]
    got += [m.payload for m in await billing.quiet(3.0)]
    assert sorted(refused.intersection(got)) == [], "refused sends were delivered"
    assert b"after" in got
