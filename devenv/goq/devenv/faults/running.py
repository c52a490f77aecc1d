"""One seed of a fault run, end to end: start the two sides, send and receive while the seeded faults
happen one after another, let what was accepted drain, judge, and stop every process by PID (also when
the run fails)."""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from goq.devenv.errors import DevEnvError
from goq.devenv.faults.applications import Ledger, ReceivingApp, SendingApp, poison_reasons
from goq.devenv.faults.backends import MongoBackend, one_mongod
from goq.devenv.faults.schedule import Fault, FaultKind, default_kinds, plan
from goq.devenv.faults.topology import RECEIVER, Mode, Topology
from goq.devenv.faults.verdict import SeedResult, judge
from goq.durations import format_duration

log = logging.getLogger("goq.devenv")


@dataclass(frozen=True)
class RunConfig:
    """How one seed runs. The timeouts are short so that faults longer than them take seconds, not
    minutes; the sender retries patiently (as in production, only faster)."""

    seed: int
    mode: Mode = "split"
    faults: int = 4
    first: tuple[Fault, ...] = ()
    """Faults the plan must include (drawn ones fill up to ``faults``)."""
    kinds: tuple[FaultKind, ...] = ()
    """What faults are drawn from; empty: ``schedule.default_kinds`` for the timeouts below."""
    attempt_timeout: float = 1.0
    """The retry policy's ``attemptTimeout`` (seconds)."""
    store_timeout: float = 2.0
    """``GOQ_STORE_TIMEOUT`` (seconds)."""
    settle: float = 1.0
    """Seconds of load before the first fault and after the last."""
    drain: float = 45.0
    """Most seconds to wait, after the faults, for every accepted message to be delivered or poisoned."""
    workers: int = 3
    backend: Callable[[Path], MongoBackend] = one_mongod
    env: dict[str, str] = field(default_factory=dict)
    """More ``GOQ_*`` settings for both sidecars."""

    def sidecar_env(self) -> dict[str, str]:
        policy = {
            "maxAttempts": 1000,
            "initialBackoff": "100ms",
            "maxBackoff": "500ms",
            "attemptTimeout": format_duration(self.attempt_timeout),
        }
        return {
            "GOQ_RETRY_POLICY": json.dumps(policy),
            "GOQ_STORE_TIMEOUT": format_duration(self.store_timeout),
            "GOQ_LEASE": "5s",
            **self.env,
        }

    def plan(self) -> list[Fault]:
        kinds = self.kinds or default_kinds(self.attempt_timeout, self.store_timeout)
        return plan(self.seed, self.faults, kinds, first=self.first)


@dataclass
class Run:
    """A started fault run: both sides, the ledger, and the two applications (the receiver receiving)."""

    config: RunConfig
    topology: Topology
    ledger: Ledger
    sender: SendingApp
    receiver: ReceivingApp


@contextlib.asynccontextmanager
async def started(config: RunConfig, workdir: Path) -> AsyncIterator[Run]:
    """Start both sides in ``workdir`` (logs stay there) and the receiving application; at the end, even
    on a failure, close the applications and stop every process by PID."""
    topology = await asyncio.to_thread(Topology.start, workdir, config.mode, config.backend, config.sidecar_env())
    ledger = Ledger()
    run = Run(config, topology, ledger, SendingApp(topology.sender, RECEIVER, ledger, config.seed),
              ReceivingApp(topology.receiver, ledger))  # fmt: skip
    consuming = asyncio.create_task(run.receiver.run())
    try:
        yield run
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await run.sender.close()
        await run.receiver.close()
        await asyncio.to_thread(topology.stop)


async def run_seed(config: RunConfig, workdir: Path) -> SeedResult:
    """Run one seed in ``workdir`` and judge it; raises only when the run itself could not be done (a
    process that would not start), never for lost messages: the result says those."""
    begun = time.monotonic()
    async with started(config, workdir) as run:
        done = await _inject(run, begun)
        await drain(run.ledger, run.topology, time.monotonic() + config.drain)
        result = judge(config.seed, config.mode, done, run.ledger, await poisoned(run.topology))
        result.seconds = time.monotonic() - begun
        return result


async def poisoned(topology: Topology) -> dict[str, str]:
    """What is in either side's poison queue: token and reason."""
    found: dict[str, str] = {}
    for side in topology.sides:
        found.update(await poison_reasons(side))
    return found


async def _inject(run: Run, begun: float) -> list[str]:
    """The faults one after another under load; what was done, with when (seconds into the run)."""
    config, topology = run.config, run.topology
    stop = asyncio.Event()
    sending = asyncio.create_task(run.sender.run(stop, config.workers))
    done: list[str] = []
    try:
        await asyncio.sleep(config.settle)
        for fault in config.plan():
            await asyncio.sleep(fault.pause)
            side = topology.side(fault.side)
            target = side.mongo_name if fault.kind.touches_mongo else f"{side.name}'s sidecar"
            done.append(f"{time.monotonic() - begun:.1f}s {fault.describe(target)}")
            try:
                await fault.kind.action(side, fault.length)
            except Exception as exc:
                raise DevEnvError(f"fault run seed {config.seed}: {done[-1]} failed: {exc}") from exc
        await asyncio.sleep(config.settle)
    finally:
        stop.set()
        await sending
    return done


async def drain(ledger: Ledger, topology: Topology, deadline: float, quiet: float = 1.0) -> None:
    """Wait until every accepted persistent message was delivered or is poisoned, or ``deadline``; then
    ``quiet`` seconds more, so that a late delivery of a refused message is seen too."""
    seen: set[str] = set()
    checked = time.monotonic()
    while time.monotonic() < deadline:
        missing = {
            token
            for token, sent in ledger.sent.items()
            if sent.outcome == "accepted" and sent.persistent and not ledger.deliveries[token]
        }
        if missing and time.monotonic() - checked > 5.0:
            checked = time.monotonic()
            seen.update(await poisoned(topology))
        if not missing - seen:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(quiet)
