"""GoQ as the benchmark runs it: a real mongod and two sidecar processes (orders -> billing) on loopback."""

import json
import tempfile
from pathlib import Path

from goq.devenv.mongo import MongoServer
from goq.devenv.sidecars import SidecarProcess, hmac_keys, local_sidecars

# Bounds high enough that a benchmark measures delivery, not the overflow policy.
QUEUE_SPEC = json.dumps({"sendQueueLimit": 2_000_000, "receiveQueueLimit": 2_000_000})


class GoQSystem:
    """Start and stop MongoDB and the two sidecars; the clients talk to their gRPC ports."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="goq-bench-"))
        self.mongo = MongoServer(self.workdir / "mongo")
        self.sidecars: dict[str, SidecarProcess] = {}

    def start(self) -> None:
        self.mongo.start()
        env = {
            "GOQ_MONGODB_URI": self.mongo.uri,
            "GOQ_HMAC_KEYS": hmac_keys({"bench": b"b" * 32}),
            "GOQ_QUEUE_SPEC": QUEUE_SPEC,
            "GOQ_LOG_LEVEL": "WARNING",
        }
        self.sidecars = local_sidecars(["orders", "billing"], self.workdir / "sidecars", env)
        for sidecar in self.sidecars.values():
            sidecar.start()

    @property
    def producer_target(self) -> str:
        return self.sidecars["orders"].grpc_target

    @property
    def consumer_target(self) -> str:
        return self.sidecars["billing"].grpc_target

    def pids(self) -> dict[str, int]:
        pids = {name: s.process.pid for name, s in self.sidecars.items() if s.process}
        if self.mongo.process:
            pids["mongod"] = self.mongo.process.pid
        return pids

    def stop(self) -> None:
        for sidecar in self.sidecars.values():
            sidecar.stop()
        self.mongo.stop()
