"""The MongoDB a side of a fault run uses: anything with a ``uri`` that can be started, stopped and killed.

``MongoServer`` (one mongod) is one; a replica set with the same four members plugs in as well, and may
bring faults of its own (a step-down, a killed primary) as further ``schedule.FaultKind`` entries.
"""

from pathlib import Path
from typing import Protocol

from goq.devenv.mongo import MongoServer


class MongoBackend(Protocol):
    """What a fault run needs of a MongoDB deployment; ``start`` after ``stop`` or ``kill`` keeps the data."""

    @property
    def uri(self) -> str: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...


def one_mongod(workdir: Path) -> MongoBackend:
    """The default backend: one mongod (a single-node replica set) with its data in ``workdir``."""
    return MongoServer(workdir)
