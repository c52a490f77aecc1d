"""Fault runs on a three-member replica set: the backend, and the faults only a replica set has (its
primary stepped down, its primary killed with ``kill -9`` and restarted later), beside the default ones
(which stop or kill every member at once)."""

import asyncio
from pathlib import Path

from goq.devenv.errors import DevEnvError
from goq.devenv.faults.backends import MongoBackend
from goq.devenv.faults.schedule import FaultKind, default_kinds
from goq.devenv.faults.topology import Side
from goq.devenv.replica_set import MongoReplicaSet


def three_members(workdir: Path) -> MongoBackend:
    """A three-member replica set with its members' data under ``workdir``."""
    return MongoReplicaSet(workdir)


def _members(side: Side) -> MongoReplicaSet:
    if not isinstance(side.mongo, MongoReplicaSet):
        raise DevEnvError(f"{side.mongo_name} is not a replica set: use the backend three_members for this fault")
    return side.mongo


async def step_down(side: Side, length: float) -> None:
    """``replSetStepDown`` on the primary; returns once another member is elected (``length`` unused)."""
    await asyncio.to_thread(_members(side).step_down)


async def kill_primary(side: Side, length: float) -> None:
    """``kill -9`` of the primary; the other two elect a new one; the killed member restarts ``length``
    seconds later and rejoins as a secondary."""
    members = _members(side)
    killed = await asyncio.to_thread(members.kill_primary)
    await asyncio.sleep(length)
    await asyncio.to_thread(members.restart_member, killed)


def replica_set_kinds(attempt_timeout: float, store_timeout: float) -> tuple[FaultKind, ...]:
    """The default kinds and the replica set's own: a step-down, and a killed primary down for no time,
    between the timeouts, and longer than both."""
    between = round((attempt_timeout + store_timeout) / 2, 2)
    long = round(max(attempt_timeout, store_timeout) * 2, 2)
    return (
        *default_kinds(attempt_timeout, store_timeout),
        FaultKind("primary stepped down", step_down, (0.0,), touches_mongo=True),
        FaultKind("kill -9 primary", kill_primary, (0.0, between, long), touches_mongo=True),
    )
