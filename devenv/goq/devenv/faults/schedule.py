"""What goes wrong in a fault run: a few kinds of fault, each a small action on one side, and the plan a
seeded random generator draws from them (which fault, on which side, for how long, after what pause).

A kind is a name, an action and the lengths it may last; a replica-set backend adds its own kinds (a
step-down, a killed primary) beside ``DEFAULT_KINDS`` without touching the rest.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from goq.devenv.faults.topology import RECEIVER, SENDER, Side

Action = Callable[[Side, float], Awaitable[None]]
"""Do the fault to a side; ``length`` seconds is how long what failed stays down."""


async def kill_sidecar(side: Side, length: float) -> None:
    """``kill -9`` the side's sidecar; start it again with the same identity, instance and data."""
    side.epoch += 1
    try:
        await asyncio.to_thread(side.sidecar.kill)
        await asyncio.sleep(length)
        await asyncio.to_thread(side.sidecar.start)
    finally:
        side.epoch += 1


async def kill_mongo(side: Side, length: float) -> None:
    """``kill -9`` the side's MongoDB; start it again on its data (it recovers from its journal)."""
    await asyncio.to_thread(side.mongo.kill)
    await asyncio.sleep(length)
    await asyncio.to_thread(side.mongo.start)


async def mongo_outage(side: Side, length: float) -> None:
    """Stop the side's MongoDB cleanly, wait, start it again."""
    await asyncio.to_thread(side.mongo.stop)
    await asyncio.sleep(length)
    await asyncio.to_thread(side.mongo.start)


@dataclass(frozen=True)
class FaultKind:
    """A kind of fault: its name in reports, what it does, and the lengths it may last (seconds)."""

    name: str
    action: Action
    lengths: tuple[float, ...]
    touches_mongo: bool = False
    """Whether it is done to the side's MongoDB (in shared mode both sides then suffer it)."""


@dataclass(frozen=True)
class Fault:
    """One planned fault: ``pause`` seconds after the previous one ended, ``kind`` on ``side`` for ``length``."""

    kind: FaultKind
    side: str
    length: float
    pause: float

    def describe(self, target: str) -> str:
        return f"{self.kind.name} {target} {self.length:g}s"


def default_kinds(attempt_timeout: float, store_timeout: float) -> tuple[FaultKind, ...]:
    """Sidecar kills, mongod kills and MongoDB outages, lasting less than the attempt timeout, between
    it and the store timeout, and longer than both (the lengths that found issue 16's loss)."""
    short = round(attempt_timeout * 0.4, 2)
    between = round((attempt_timeout + store_timeout) / 2, 2)
    long = round(max(attempt_timeout, store_timeout) * 2, 2)
    return (
        FaultKind("kill -9 sidecar", kill_sidecar, (0.0, short, attempt_timeout)),
        FaultKind("kill -9 mongod", kill_mongo, (0.0, between, long), touches_mongo=True),
        FaultKind("mongod outage", mongo_outage, (short, between, long), touches_mongo=True),
    )


DEFAULT_KINDS = default_kinds(1.0, 2.0)
"""The kinds for the timeouts ``running.RunConfig`` uses by default."""


def plan(
    seed: int,
    count: int,
    kinds: Sequence[FaultKind],
    *,
    pauses: tuple[float, float] = (0.5, 2.0),
    first: Sequence[Fault] = (),
) -> list[Fault]:
    """``count`` faults drawn by a generator seeded with ``seed`` (the same seed, the same plan), after
    the ``first`` ones given (a run that must include a particular fault names it there)."""
    rng = random.Random(seed)
    faults = list(first)
    while len(faults) < count:
        kind = rng.choice(list(kinds))
        side = rng.choice((SENDER, RECEIVER))
        faults.append(Fault(kind, side, rng.choice(kind.lengths), round(rng.uniform(*pauses), 2)))
    rng.shuffle(faults)
    return faults
