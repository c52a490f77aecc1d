"""Faults in every test run (issue 16): a sender and a receiver sidecar, real processes on real mongods,
under a mixed load while either sidecar and either MongoDB is killed or cut, for shorter and longer than
the attempt and store timeouts. Nothing accepted may be lost, nothing refused delivered.

The short seeded run below is part of every ``make test``; ``--fault-seeds N`` (or ``GOQ_FAULT_SEEDS=N``)
adds the long run over N seeds and prints its per-seed table (docs/testing.md)."""

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from goq.devenv.errors import DevEnvError
from goq.devenv.faults import RECEIVER, RunConfig, SeedResult, run_seed, table
from goq.devenv.faults.running import drain, poisoned, started
from goq.devenv.faults.schedule import Fault, default_kinds, mongo_outage
from goq.devenv.faults.topology import metric_total
from goq.devenv.faults.verdict import header, judge, row

ATTEMPT_TIMEOUT = 1.0
STORE_TIMEOUT = 2.0
KINDS = default_kinds(ATTEMPT_TIMEOUT, STORE_TIMEOUT)
OUTAGE = next(kind for kind in KINDS if kind.action is mongo_outage)
LONG = max(OUTAGE.lengths)
"""Longer than both timeouts: the outage that lost every message of issue 16."""
SECONDS_PER_SEED = 180


def report(capsys: pytest.CaptureFixture[str], results: list[SeedResult]) -> None:
    with capsys.disabled():
        print("\n" + table(results))


@pytest.mark.parametrize(
    ("seed", "mode"), [(1, "split"), (2, "shared")], ids=["own-mongod-per-side", "one-shared-mongod"]
)
async def test_under_seeded_faults_every_accepted_message_is_delivered_or_poisoned(
    seed: int, mode: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three faults drawn from the seed, plus a receiver-side outage longer than both timeouts."""
    receivers_outage = Fault(OUTAGE, RECEIVER, LONG, pause=1.0)
    config = RunConfig(seed, mode="split" if mode == "split" else "shared", faults=4, first=(receivers_outage,))
    result = await run_seed(config, tmp_path)
    report(capsys, [result])
    assert result.ok, result.explain()
    assert result.accepted > 50, f"too little load to judge: {result}"
    assert result.delivered + result.poisoned == result.accepted


@pytest.mark.timeout(0)  # bounded below by the number of seeds asked for
async def test_many_seeds_lose_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The long run: ``--fault-seeds N`` seeds of six faults, alternately on split and shared mongods."""
    seeds = int(request.config.getoption("--fault-seeds"))
    if seeds <= 0:
        pytest.skip("the long fault run: give --fault-seeds N or GOQ_FAULT_SEEDS=N (the short run above always runs)")
    results: list[SeedResult] = []
    failed: list[str] = []
    with capsys.disabled():
        print("\n" + header())
    async with asyncio.timeout(seeds * SECONDS_PER_SEED):
        for seed, mode in zip(range(100, 100 + seeds), itertools.cycle(("split", "shared")), strict=False):
            config = RunConfig(seed, mode="split" if mode == "split" else "shared", faults=6)
            try:
                results.append(await run_seed(config, tmp_path / f"seed-{seed}"))
            except DevEnvError as exc:  # a process that would not start again: this seed fails, the others run
                failed.append(f"seed {seed} ({mode}) could not be run: {str(exc)[:2000]}")
                continue
            with capsys.disabled():
                print(row(results[-1]))
    report(capsys, results)
    failed += [r.explain() for r in results if not r.ok]
    assert not failed, "\n".join(failed)


async def test_a_receiver_database_outage_of_three_attempt_timeouts_loses_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The loss of issue 16, deterministic: the receiver's own mongod stops while 80 persistent messages
    are sent (unary, streams and REST, with and without ids) and stays down for three attempt timeouts.
    The sender's attempts time out while the receiver's writes wait on the dead database; a retry that
    was answered DUPLICATE before the write succeeded made the sender forget a message the receiver then
    failed to store. All 80 must arrive once the database is back."""
    config = RunConfig(seed=0, attempt_timeout=ATTEMPT_TIMEOUT, store_timeout=STORE_TIMEOUT)
    begun = time.monotonic()
    async with started(config, tmp_path) as run:
        sender, topology = run.sender, run.topology
        await asyncio.to_thread(topology.receiver.mongo.stop)
        streams = [[sender.new(route, persistent=True) for _ in range(20)] for route in ("stream", "stream+id")]
        routes = ("unary", "unary+id", "rest", "rest+id")
        singles = [sender.new(route, persistent=True) for route in routes for _ in range(10)]
        await asyncio.gather(
            *(sender.stream(batch) for batch in streams),
            *(sender.unary(s) if s.route.startswith("unary") else sender.rest(s) for s in singles),
        )
        assert [s.detail for s in run.ledger.sent.values() if s.outcome != "accepted"] == []
        await asyncio.sleep(3 * ATTEMPT_TIMEOUT)
        failed_attempts = metric_total(topology.sender, "goq_delivery_attempts_failed_total")
        await asyncio.to_thread(topology.receiver.mongo.start)

        await drain(run.ledger, topology, time.monotonic() + 60.0)
        fault = f"receiver's mongod stopped {3 * ATTEMPT_TIMEOUT:g}s"
        result = judge(0, "split", [fault], run.ledger, await poisoned(topology))
        duplicates = metric_total(topology.receiver, "goq_messages_duplicate_total")
        result.seconds = time.monotonic() - begun
    report(capsys, [result])
    with capsys.disabled():
        print(f"receiver's duplicate counter {duplicates:g}, sender's failed attempts {failed_attempts:g}")
    assert failed_attempts > 0, "no attempt timed out: the scenario did not happen"
    assert (result.accepted, result.delivered) == (80, 80), result.explain() + f"\nduplicates answered: {duplicates:g}"
