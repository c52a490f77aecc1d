"""Bounded work per peer request, against a real sidecar: a batch over the envelope bound is refused
whole and counted, a flood of refusable envelopes is counted exactly and logged in a few lines, honest
messages get through meanwhile, and requests that do not decode are counted too."""

import asyncio
import time
import urllib.request
from collections.abc import Callable

import grpc
from prometheus_client.parser import text_string_to_metric_families

from goq.api.v1 import envelope_pb2, peer_pb2, peer_pb2_grpc
from goq.devenv.sidecars import SidecarProcess
from goq.sidecar.apis.peer_limits import MAX_BATCH_ENVELOPES

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
UNSIGNED = envelope_pb2.SignedEnvelope()  # two bytes in a batch: refused as signed with an unknown key


def refused_metrics(sidecar: SidecarProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"{sidecar.health_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "goq_deliveries_refused_total"
    }


def refusal_lines(sidecar: SidecarProcess) -> list[str]:
    return [line for line in sidecar.log().splitlines() if "refused" in line]


async def flood(sidecar: SidecarProcess, batches: int, size: int) -> list[int]:
    """Send ``batches`` batches of ``size`` unsigned envelopes on one stream; the outcomes answered."""
    outcomes: list[int] = []
    async with grpc.aio.insecure_channel(sidecar.peer_target) as channel:
        call = peer_pb2_grpc.PeerStub(channel).Deliver()
        for seq in range(1, batches + 1):
            await call.write(peer_pb2.DeliverBatch(seq=seq, messages=[UNSIGNED] * size))
            answer = await call.read()
            assert isinstance(answer, peer_pb2.DeliverAck)
            assert answer.seq == seq
            outcomes.extend(r.outcome for r in answer.results)
        await call.done_writing()
    return outcomes


async def test_a_batch_over_the_envelope_bound_is_refused_whole_and_counted(sidecars: Sidecars, apps: Apps) -> None:
    billing = sidecars("billing")["billing"]
    over = MAX_BATCH_ENVELOPES + 1
    async with grpc.aio.insecure_channel(billing.peer_target) as channel:
        call = peer_pb2_grpc.PeerStub(channel).Deliver()
        await call.write(peer_pb2.DeliverBatch(seq=1, messages=[UNSIGNED] * over))
        assert await call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = await call.details() or ""
    assert f"batch-too-large: a batch of {over} envelopes" in details
    assert f"at most {MAX_BATCH_ENVELOPES} are taken in one batch" in details

    assert (await apps(billing).stats()).refused == over
    assert refused_metrics(billing) == {"batch-too-large": over}
    assert len([line for line in refusal_lines(billing) if "batch-too-large" in line]) == 1


async def test_a_flood_of_refusable_envelopes_is_counted_exactly_logged_briefly_and_delays_honest_messages_little(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.send("billing", [b"warm-up"])
    assert len(await billing.receive(1, within=30)) == 1
    lines_before = len(group["billing"].log().splitlines())
    latencies: list[float] = []
    flooded = asyncio.Event()

    async def honest() -> None:
        """One message at a time, each received before the next is sent, until the floods are answered."""
        while not flooded.is_set():
            started = time.monotonic()
            await orders.send("billing", [b"honest"])
            assert len(await billing.receive(1, within=30)) == 1, "an honest message did not arrive"
            latencies.append(time.monotonic() - started)

    async def floods() -> list[list[int]]:
        try:  # two streams of five batches within the bound: 100,000 envelopes
            return await asyncio.gather(*(flood(group["billing"], 5, MAX_BATCH_ENVELOPES) for _ in range(2)))
        finally:
            flooded.set()

    started = time.monotonic()
    answered, _ = await asyncio.gather(floods(), honest())
    took = time.monotonic() - started

    # an unknown key is "retry later" (it may not have reached this sidecar yet), and still never delivered
    assert all(outcomes == [peer_pb2.OUTCOME_RETRY_LATER] * 5 * MAX_BATCH_ENVELOPES for outcomes in answered)
    print(f"flood answered in {took:.2f}s; {len(latencies)} honest messages, slowest {max(latencies):.3f}s")
    assert latencies, "no honest message was sent during the flood"
    assert max(latencies) < 2.0, f"honest messages took up to {max(latencies):.2f}s"
    stats = await billing.stats()
    assert (stats.refused, stats.received) == (100_000, 1 + len(latencies))
    assert refused_metrics(group["billing"]) == {"unknown-key": 100_000}
    new_lines = group["billing"].log().splitlines()[lines_before:]
    assert len(new_lines) < 20, "\n".join(new_lines[:30])
    assert "refused a delivery (unknown-key)" in "\n".join(new_lines)


async def test_a_request_that_does_not_decode_is_refused_and_counted_as_undecodable(
    sidecars: Sidecars, apps: Apps
) -> None:
    billing = sidecars("billing")["billing"]
    async with grpc.aio.insecure_channel(billing.peer_target) as channel:
        for method in ("/goq.v1.Peer/Deliver", "/goq.v1.Peer/Transfer"):
            call = channel.stream_stream(method, request_serializer=bytes, response_deserializer=bytes)()
            await call.write(b"\xff\xff\xff")
            assert await call.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "the request is not a valid protobuf message" in (await call.details() or "")

    assert (await apps(billing).stats()).refused == 2
    assert refused_metrics(billing) == {"undecodable": 2}
    assert any("refused a delivery (undecodable): /goq.v1.Peer/Deliver" in line for line in refusal_lines(billing))
