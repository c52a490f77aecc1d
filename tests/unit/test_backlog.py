"""The memory window per destination: what is held, what waits in the store, and in which order it comes back."""

import asyncio

from goq.identity import Address
from goq.sidecar.core.backlog import Backlog, WindowConfig
from goq.sidecar.domain.records import Outgoing

BILLING = Address("billing", "default")


class Store:
    """Keeps what waits in the store only, as MongoDB would: by spill sequence."""

    def __init__(self) -> None:
        self.waiting: list[Outgoing] = []

    async def load_spilled(self, destination: str, limit: int) -> list[Outgoing]:
        self.waiting.sort(key=lambda m: m.spill)
        taken, self.waiting = self.waiting[:limit], self.waiting[limit:]
        return [Outgoing(m.id, m.destination, m.body, m.key_id, m.signature, True, m.created_at) for m in taken]

    async def spilled_counts(self) -> dict[str, int]:
        return {str(BILLING): len(self.waiting)} if self.waiting else {}


def messages(first: int, count: int) -> list[Outgoing]:
    return [Outgoing(str(i), BILLING, b"x", "k", b"s", True, 0.0) for i in range(first, first + count)]


class Lane:
    def __init__(self) -> None:
        self.held: list[str] = []

    def resident(self, _: Address) -> tuple[int, int]:
        return len(self.held), len(self.held)

    def hold(self, items: list[Outgoing]) -> None:
        self.held.extend(m.id for m in items)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_past_the_window_messages_wait_in_the_store_and_come_back_oldest_first_as_room_frees() -> None:
    store, lane = Store(), Lane()
    backlog = Backlog(store, WindowConfig(messages=3, bytes=1000), lane.resident, lane.hold)
    batch = messages(0, 5)
    backlog.place(batch)
    assert [bool(m.spill) for m in batch] == [False, False, False, True, True]
    store.waiting += [m for m in batch if m.spill]
    lane.hold(backlog.stored(batch, [True] * 5))
    assert lane.held == ["0", "1", "2"]
    assert backlog.total == 2

    later = messages(5, 1)
    backlog.place(later)  # room or not, it waits while older messages of its destination wait
    assert later[0].spill
    store.waiting += later
    lane.hold(backlog.stored(later, [True]))

    del lane.held[:2]  # two delivered
    backlog.kick(BILLING)
    await settle()
    assert lane.held == ["2", "3", "4"]
    assert backlog.total == 1


async def test_a_waiting_message_is_not_loaded_before_its_write_is_acknowledged() -> None:
    store, lane = Store(), Lane()
    backlog = Backlog(store, WindowConfig(messages=1, bytes=1000), lane.resident, lane.hold)
    lane.hold(messages(0, 1))
    batch = messages(1, 2)
    backlog.place(batch)
    store.waiting += batch  # visible to reads before the majority write returns
    lane.held.clear()
    backlog.kick(BILLING)
    await settle()
    assert lane.held == []
    assert backlog.total == 0  # while being written it counts as admitted, not as waiting

    backlog.stored(batch, [True, True])
    await settle()
    assert lane.held == ["1"]


async def test_a_refused_write_or_a_repeated_id_frees_its_place_in_the_queue() -> None:
    store, lane = Store(), Lane()
    backlog = Backlog(store, WindowConfig(messages=0, bytes=1000), lane.resident, lane.hold)
    refused, repeated = messages(0, 1), messages(1, 1)
    backlog.place(refused)
    backlog.abandon(refused)
    backlog.place(repeated)
    assert backlog.stored(repeated, [False]) == repeated  # already stored: held as an unspilled repeat would be
    assert backlog.waiting[BILLING] == 0
    assert repeated[0].spill == 0
