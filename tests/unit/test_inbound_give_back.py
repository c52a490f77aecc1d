"""What a cancelled Receive stream gives back (``Leases.give_back``, an ``Inbound``'s ``leases``): its unacknowledged
messages, first in line and still acknowledgeable by id until handed out again; never one handed out again since,
never a large one (its body is read while leased), and one handed out ``max_deliveries`` times is left to lease
expiry, which poisons it. Pure: memory inboxes, a fake clock."""

from goq.identity import Address
from goq.messages import LargeRef, Message
from goq.queue_spec import GoQueueSpec
from goq.sidecar.adapters.stores.memory import MemoryInbox
from goq.sidecar.core.inbound import Inbound, InboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner
from goq.sidecar.domain.records import Incoming, PoisonRecord, inbound_key
from goq.signing import Keyring

ORDERS = Address.parse("orders.shop")
BILLING = Address.parse("billing.shop")
NOW = 1_000_000.0


class KeepingSink:
    def __init__(self) -> None:
        self.records: list[PoisonRecord] = []

    async def put(self, records: list[PoisonRecord]) -> None:
        self.records.extend(records)


def incoming(message_id: str, *, large: bool = False) -> Incoming:
    ref = LargeRef(size=10, mac=b"m" * 32, key_id="k1", chunk_size=10) if large else None
    message = Message(message_id, ORDERS, BILLING, int(NOW * 1000), b"" if large else b"x", large=ref)
    return Incoming(inbound_key(ORDERS, message_id), message, message.encode(), "k1", b"s", NOW)


def inbound_with(*ids: str, sink: KeepingSink | None = None, max_deliveries: int = 10) -> Inbound:
    counters = Counters()
    inbound = Inbound(
        BILLING,
        lambda: Keyring({"k1": b"k" * 32}, "k1"),
        GoQueueSpec,
        {True: MemoryInbox(60.0), False: MemoryInbox(60.0)},
        Poisoner(sink or KeepingSink(), counters),
        counters,
        InboundConfig(lease=30.0, max_deliveries=max_deliveries),
        clock=lambda: NOW,
    )
    inbound.leases.recover([incoming(i, large=i.startswith("large")) for i in ids])
    return inbound


def held(items: list[Incoming]) -> dict[str, int]:
    """What a Receive stream records of what it took."""
    return {m.id: m.deliveries for m in items}


def test_what_a_cancelled_stream_held_goes_back_first_in_line_in_order() -> None:
    inbound = inbound_with("a", "b", "c")
    stream = held(inbound.leases.take(2))

    assert inbound.leases.give_back(stream) == 2
    assert inbound.leases.leased == {}
    assert [(m.id, m.deliveries) for m in inbound.leases.take(3)] == [("a", 2), ("b", 2), ("c", 1)]
    assert inbound.leases.returned == {}  # handed out again: the new holder's lease applies


def test_a_message_given_back_is_still_the_applications_to_acknowledge_until_handed_out_again() -> None:
    inbound = inbound_with("a", "b")
    inbound.leases.give_back(held(inbound.leases.take(2)))

    assert inbound.leases.acknowledge(["a"]) == []
    assert [m.id for m in inbound.leases.ready] == ["b"]
    assert inbound.leases.acknowledge(["a"]) == ["a"]  # once
    assert inbound.depth == 1


async def test_a_message_given_back_can_be_rejected_by_id() -> None:
    sink = KeepingSink()
    inbound = inbound_with("a", "b", sink=sink)
    inbound.leases.give_back(held(inbound.leases.take(2)))

    assert await inbound.leases.reject("a", requeue=False, delay=0.0, reason="cannot parse")
    assert [r.id for r in sink.records] == ["a"]
    assert [m.id for m in inbound.leases.ready] == ["b"]


async def test_a_message_handed_out_again_since_is_not_taken_from_its_new_holder() -> None:
    inbound = inbound_with("a")
    first = held(inbound.leases.take(1))
    inbound.leases.leased["a"].lease_until = NOW  # its lease ran out while the first stream was open
    await inbound.leases.expire_leases()
    second = held(inbound.leases.take(1))  # another stream took it
    assert second == {"a": 2}

    assert inbound.leases.give_back(first) == 0  # the first stream's record is of hand-over 1
    assert "a" in inbound.leases.leased


def test_a_large_message_keeps_its_lease() -> None:
    inbound = inbound_with("large-1", "a")
    stream = held(inbound.leases.take(2))

    assert inbound.leases.give_back(stream) == 1
    assert list(inbound.leases.leased) == ["large-1"]
    assert [m.id for m in inbound.leases.ready] == ["a"]


async def test_a_message_handed_out_max_deliveries_times_is_left_to_lease_expiry_which_poisons_it() -> None:
    sink = KeepingSink()
    inbound = inbound_with("a", sink=sink, max_deliveries=2)
    inbound.leases.give_back(held(inbound.leases.take(1)))
    last = held(inbound.leases.take(1))  # the second hand-over: the last allowed

    assert inbound.leases.give_back(last) == 0
    assert inbound.leases.leased["a"].lease_until <= NOW
    await inbound.leases.expire_leases()
    assert [(r.id, r.reason) for r in sink.records] == [("a", "max-deliveries")]
    assert inbound.leases.leased == {}
