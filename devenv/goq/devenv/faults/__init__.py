"""Fault runs: two sidecar processes (a sender and a receiver) under a mixed load while a seeded schedule
kills them and their MongoDB and cuts MongoDB for shorter and longer than the timeouts; a ledger of every
answer the sending application got, and a verdict: every accepted persistent message was delivered or
poisoned with a reason, nothing refused was delivered; duplicates are counted, not failed.

Modules: ``backends`` (the MongoDB a side uses, pluggable: one mongod, or a replica set), ``schedule``
(what can go wrong, as small actions, and the seeded plan), ``applications`` (the sending and the
receiving application), ``verdict`` (the ledger's checks and the per-seed table), ``running`` (one seed,
end to end, with everything stopped by PID at the end). Local processes on loopback only; no I/O at import.
"""

from goq.devenv.faults.backends import MongoBackend, one_mongod
from goq.devenv.faults.running import RunConfig, run_seed
from goq.devenv.faults.schedule import DEFAULT_KINDS, Fault, FaultKind, plan
from goq.devenv.faults.topology import RECEIVER, SENDER, Side, Topology
from goq.devenv.faults.verdict import SeedResult, table

__all__ = [
    "DEFAULT_KINDS",
    "RECEIVER",
    "SENDER",
    "Fault",
    "FaultKind",
    "MongoBackend",
    "RunConfig",
    "SeedResult",
    "Side",
    "Topology",
    "one_mongod",
    "plan",
    "run_seed",
    "table",
]
