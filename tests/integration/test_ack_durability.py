"""What an answered Ack promises (docs/api.md, "Acknowledge, or give back"): the message is not handed out
again by this sidecar; the acknowledgement is written in the background, so a receiver killed before that
write hands the message out again after its restart (at least once), and one killed after it does not."""

import asyncio
from collections.abc import Callable

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
