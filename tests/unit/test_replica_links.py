"""Which replica of a destination gets a lane's next batch: the one with the fewest messages outstanding, ties
going round; a replica whose link failed is skipped while another is up; replicas are resolved again, so new
ones get work and gone ones none (``Lane._choose_link``). Nothing here connects: a link opens on its first send."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from goq.api.v1 import peer_pb2
from goq.devenv.node.dns_server import DnsServer
from goq.identity import Address
from goq.retry import RetryPolicy
from goq.sidecar.adapters.peering import PeerLink
from goq.sidecar.adapters.resolving import DnsResolver, StaticResolver, UnresolvableError
from goq.sidecar.core.lane import Lane
from goq.sidecar.core.outbound import Outbound, OutboundConfig
from goq.sidecar.domain.counting import Counters
from goq.sidecar.domain.poisoning import Poisoner

from .test_early_delivery import KeepingSink, RecordingOutbox, messages

BILLING = Address.parse("billing.shop")
A, B, C = "127.0.0.1:7001", "127.0.0.2:7001", "127.0.0.3:7001"


@pytest.fixture
def resolver() -> StaticResolver:
    return StaticResolver({str(BILLING): [A, B, C]})


@pytest.fixture
async def lane(resolver: StaticResolver) -> AsyncIterator[Lane]:
    counters = Counters()
    outbound = Outbound(
        Address.parse("orders.shop"),
        lambda: RetryPolicy(initial_backoff=30.0),
        resolver,
        {True: RecordingOutbox(), False: RecordingOutbox()},
        Poisoner(KeepingSink(), counters),
        counters,
        OutboundConfig(resolve_every=0.0),
    )
    lane = outbound.lanes[BILLING] = Lane(outbound, BILLING)
    yield lane
    await outbound.close(0.0)


async def choices(lane: Lane, count: int) -> list[str]:
    return [(await lane._choose_link()).target for _ in range(count)]


async def test_idle_replicas_take_batches_in_turn(lane: Lane) -> None:
    assert await choices(lane, 6) == [A, B, C, A, B, C]


async def test_the_replica_with_the_fewest_messages_outstanding_gets_the_batch(lane: Lane) -> None:
    await lane._choose_link()
    lane.links[A].outstanding, lane.links[B].outstanding, lane.links[C].outstanding = 300, 20, 256
    assert await choices(lane, 1) == [B]
    lane.links[B].outstanding = 400
    assert await choices(lane, 1) == [C]


async def test_a_replica_whose_link_failed_gets_no_batch_while_another_is_up(lane: Lane) -> None:
    await lane._choose_link()
    lane._failing(lane.links[A])
    assert set(await choices(lane, 4)) == {B, C}
    lane._failing(lane.links[B])
    lane._failing(lane.links[C])
    assert (await lane._choose_link()).target in {A, B, C}  # all failing: still tried, the retry policy paces them


async def test_one_fault_that_fails_many_batches_counts_once(lane: Lane) -> None:
    await lane._choose_link()
    for _ in range(8):  # a broken stream fails every batch in its window
        lane._failing(lane.links[A])
    assert lane._down[A][1] == 1


async def test_an_answer_puts_a_failed_replica_back_at_once(lane: Lane) -> None:
    await lane._choose_link()
    link = lane.links[A]
    lane._failing(link)
    await link.slots.acquire()
    lane._sent_on(link, messages(1))
    answered: asyncio.Future[list[peer_pb2.MessageResult]] = asyncio.get_running_loop().create_future()
    answered.set_result([peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_ACCEPTED)])
    written: asyncio.Future[asyncio.Future[list[peer_pb2.MessageResult]]] = asyncio.get_running_loop().create_future()
    written.set_result(answered)
    await lane._complete(link, messages(1), written)
    assert A not in lane._down
    assert link.outstanding == 0


async def test_a_new_replica_gets_work_and_a_gone_one_none_after_resolving_again(
    lane: Lane, resolver: StaticResolver
) -> None:
    await lane._choose_link()
    resolver.peers[str(BILLING)] = [B, C, "127.0.0.4:7001"]
    gone = lane.links[A]
    gone.outstanding = 1  # a batch still in flight there: its link stays open until it is answered
    await lane._choose_link()  # resolving again runs in the background
    await asyncio.sleep(0)
    assert sorted(lane.links) == [B, C, "127.0.0.4:7001"]
    assert gone in lane._retiring
    assert "127.0.0.4:7001" in await choices(lane, 3)
    await gone.slots.acquire()
    lane._answered(gone, 1)
    assert gone not in lane._retiring


async def test_a_destination_without_a_ready_replica_is_unresolvable(lane: Lane, resolver: StaticResolver) -> None:
    resolver.peers[str(BILLING)] = []
    with pytest.raises(UnresolvableError):
        await lane._choose_link()


async def test_a_probe_asks_the_replica_its_message_last_went_to(lane: Lane) -> None:
    items = messages(2)
    lane.outbound.admission.unstored.update(m.id for m in items)
    await lane._choose_link()
    lane._sent_on(lane.links[C], items[:1])
    lane.links[C].outstanding = 0
    asked: list[tuple[str, list[str]]] = []

    async def ask(link: PeerLink, batch: list, patience: float) -> list[peer_pb2.MessageResult]:  # type: ignore[type-arg]
        asked.append((link.target, [m.id for m in batch]))
        return [peer_pb2.MessageResult(outcome=peer_pb2.OUTCOME_DUPLICATE) for _ in batch]

    lane._ask = ask  # type: ignore[method-assign]
    results = await lane.probe(items, 1.0)
    assert results is not None
    assert len(results) == 2
    assert (C, ["m0"]) in asked
    assert all(target != C for target, ids in asked if ids == ["m1"])


def test_a_static_peer_named_again_is_another_replica() -> None:
    resolver = StaticResolver.parse(f"billing={A},billing.shop={B},orders={C}", "shop")
    assert asyncio.run(resolver.targets(BILLING)) == [A, B]
    assert resolver.target(BILLING) == A  # one target, for a single stream (large messages)


async def test_dns_finds_every_ready_replica_behind_the_headless_service() -> None:
    answers = {"goq-billing.shop.svc.cluster.local": ["127.0.0.3", "127.0.0.2"]}
    server = DnsServer(answers.get)
    await server.start()
    try:
        resolver = DnsResolver(server=server.address)
        assert await resolver.targets(BILLING) == ["127.0.0.2:7702", "127.0.0.3:7702"]
        with pytest.raises(UnresolvableError, match="did not resolve"):
            await resolver.targets(Address("shipping", "shop"))
        answers["goq-billing.shop.svc.cluster.local"] = []  # no replica ready
        with pytest.raises(UnresolvableError):
            await resolver.targets(BILLING)
    finally:
        await server.stop()
