"""What an answered Ack promises (docs/api.md, "Acknowledge, or give back"): the message is not handed out
again by this sidecar; the acknowledgement is written in the background, so a receiver killed before that
write hands the message out again after its restart (at least once), and one killed after it does not.
What a cancelled Receive stream gives back unacknowledged is still in the inbox: a receiver killed as it
gives them back hands every one out again after its restart."""

import asyncio
import time
from collections.abc import Callable

import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.sidecars import SidecarProcess
from goq.sidecar.adapters.stores.mongo.common import BACKGROUND_LINGER, PROGRESS_DELAY

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
WRITTEN = PROGRESS_DELAY + BACKGROUND_LINGER + 1.0
"""Seconds after which every answered acknowledgement has been written (MongoDB up)."""


async def held_by_billing(sidecars: Sidecars, apps: Apps, count: int) -> tuple[SidecarProcess, App, list[str]]:
    """``count`` persistent messages delivered to billing and leased to its application, not acknowledged."""
    group = sidecars("orders", "billing")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", [str(n).encode() for n in range(count)])
    got = await billing.receive(count, within=30, ack=False)
    assert len(got) == count
    return group["billing"], billing, [m.id for m in got]


async def restarted(sidecar: SidecarProcess, apps: Apps) -> App:
    sidecar.kill()
    await asyncio.to_thread(sidecar.start)
    return apps(sidecar)


async def test_acknowledgements_written_before_a_kill_are_not_handed_out_again(sidecars: Sidecars, apps: Apps) -> None:
    sidecar, billing, ids = await held_by_billing(sidecars, apps, 10)
    assert list((await billing.stub.Ack(pb.AckRequest(ids=ids[:4]))).unknown) == []  # part of a group: progress
    await asyncio.sleep(WRITTEN)

    again = await restarted(sidecar, apps)
    back = await again.receive(10, within=5, ack=False)
    assert sorted(m.id for m in back) == sorted(ids[4:])

    assert list((await again.stub.Ack(pb.AckRequest(ids=ids[4:]))).unknown) == []  # the rest: a tombstone
    await asyncio.sleep(WRITTEN)
    assert await (await restarted(sidecar, apps)).quiet(3) == []


async def test_an_acknowledgement_killed_before_its_background_write_is_handed_out_again_after_restart(
    sidecars: Sidecars, apps: Apps
) -> None:
    sidecar, billing, ids = await held_by_billing(sidecars, apps, 10)
    assert list((await billing.stub.Ack(pb.AckRequest(ids=ids[:4]))).unknown) == []
    again = await restarted(sidecar, apps)  # within PROGRESS_DELAY of the answer
    back = await again.receive(10, within=5, ack=False)
    assert sorted(m.id for m in back) == sorted(ids)  # at least once: the 4 acknowledged come back too


async def taken_and_cancelled(billing: App, at_least: int) -> list[str]:
    """Ids a Receive stream took (at least ``at_least``, none acknowledged) before the application cancelled it."""
    stream = billing.stub.Receive(pb.ReceiveRequest(max_in_flight=at_least + 10, max_batch=10))
    taken: list[str] = []
    try:
        async for batch in stream:
            taken.extend(m.id for m in batch.messages)
            if len(taken) >= at_least:
                break
    finally:
        stream.cancel()
    return taken


@pytest.mark.parametrize("moment", ["as-the-stream-ends", "once-given-back"])
async def test_a_receiver_killed_as_a_cancelled_stream_gives_back_its_messages_hands_out_every_one_after_restart(
    sidecars: Sidecars, apps: Apps, moment: str
) -> None:
    """Killed at once after the cancel (racing ``Leases.give_back``: still leased, or back in line), or once
    nothing is leased any more and any write since has landed (back in line in memory): either way every
    message is in the inbox."""
    count = 200
    group = sidecars("orders", "billing", GOQ_LEASE="60s")  # no lease ends during the test: only the give-back
    orders, billing = apps(group["orders"]), apps(group["billing"])
    results = await orders.send("billing", [str(n).encode() for n in range(count)])
    accepted = {r.accepted.id for r in results if r.HasField("accepted")}
    assert len(accepted) == count
    deadline = time.monotonic() + 30
    while (await billing.stats()).receive_queue < count:  # all in billing's inbox: none left with orders
        assert time.monotonic() < deadline, "the messages did not all reach billing within 30 s"
        await asyncio.sleep(0.05)

    taken = await taken_and_cancelled(billing, 50)
    if moment == "once-given-back":
        while (await billing.stats()).in_flight:
            assert time.monotonic() < deadline, "the cancelled stream's messages were never given back"
            await asyncio.sleep(0.02)
        await asyncio.sleep(WRITTEN)  # any store write the give-back caused has landed
    again = await restarted(group["billing"], apps)

    back = await again.receive(count, within=30, distinct=True)
    got = {m.id for m in back}
    assert set(taken) <= accepted
    assert not accepted - got, f"lost after the restart: {sorted(accepted - got)}"
    assert got == accepted
