"""GoQ as the benchmark runs it: a real mongod and sidecar processes (by default orders -> billing) on loopback."""

import contextlib
import datetime
import json
import shutil
import socket
import ssl
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc
from goq.devenv.errors import DevEnvError
from goq.devenv.mongo import MongoServer
from goq.devenv.replica_set import MongoReplicaSet
from goq.devenv.sidecars import PORT_ATTEMPTS, SidecarProcess, hmac_keys, local_sidecars
from goq.identity import Address
from goq.operator.identity_certs import issue_identity, new_identity_authority

# Bounds high enough that a benchmark measures delivery, not the overflow policy (the backlog scenario
# queues 1,000,000 messages).
QUEUE_SPEC = json.dumps({"sendQueueLimit": 2_000_000, "receiveQueueLimit": 2_000_000})
MONGO_CACHE_GB = 2.0
"""WiredTiger cache of the benchmark's mongod: the tests' 0.25 GB would make 64 KiB runs evict constantly."""
STATS_FIELDS = (
    "send_queue",
    "receive_queue",
    "in_flight",
    "sent",
    "delivered",
    "received",
    "acknowledged",
    "poisoned",
    "duplicates",
    "refused",
)


WAVE = 10  # sidecars launched at once by the scale scenario


def stats_of(target: str, timeout: float = 10.0) -> dict[str, int]:
    """One sidecar's ``Stats``: queue depths, leases held and counters."""
    with grpc.insecure_channel(target) as channel:
        answer = queue_manager_pb2_grpc.QueueManagerStub(channel).Stats(pb.StatsRequest(), timeout=timeout)
    return {name: int(getattr(answer, name)) for name in STATS_FIELDS}


DELIVERY_COUNTERS = (
    "goq_delivery_attempts_failed",
    "goq_deliveries_deferred_while_storing",
    "goq_messages_duplicate",
    "goq_messages_redelivered",
)
"""What a sidecar counts of the deliveries that did not go through the first time."""


def delivery_counters(health_url: str, timeout: float = 10.0) -> dict[str, float]:
    """One sidecar's DELIVERY_COUNTERS, from its Prometheus ``/metrics``."""
    with urllib.request.urlopen(f"{health_url}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    found = dict.fromkeys(DELIVERY_COUNTERS, 0.0)
    for family in text_string_to_metric_families(text):  # a counter family's name is without "_total"
        if family.name in found:
            found[family.name] += sum(sample.value for sample in family.samples if sample.name.endswith("_total"))
    return found


def poisoned_of(target: str, limit: int, timeout: float = 30.0) -> list[str]:
    """The ids in one sidecar's poison queue (outbound and inbound), up to ``limit``."""
    with grpc.insecure_channel(target) as channel:
        answer = queue_manager_pb2_grpc.QueueManagerStub(channel).ListPoisoned(
            pb.ListPoisonedRequest(limit=limit), timeout=timeout
        )
    return [m.id for m in answer.messages]


PRODUCTION_ELECTION_TIMEOUT_MS = 10_000
"""MongoDB's default: the benchmark's replica set is tuned as in production, not for fast elections in tests."""


class GoQSystem:
    """Start and stop MongoDB and the sidecars; clients talk to their gRPC and REST ports.

    MongoDB is one mongod, or with ``replica_set`` three members on this machine: what a production store
    is, with every majority write waiting for a second member's journal."""

    def __init__(
        self,
        identities: tuple[str, ...] = ("orders", "billing"),
        extra_env: dict[str, str] | None = None,
        replica_set: bool = False,
        peer_tls: bool = False,
        history_window: int | None = None,
    ):
        self.identities = identities
        self.extra_env = extra_env or {}
        self.peer_tls = peer_tls
        """Mutual TLS between the sidecars, as a cluster runs them by default (certificates as the operator
        issues them, made here)."""
        self.history_window = history_window
        """mongod's ``minSnapshotHistoryWindowInSeconds``, set on every member after start; ``None``: as the
        dev environment starts mongod."""
        self.workdir = Path(tempfile.mkdtemp(prefix="goq-bench-"))
        self.mongo: MongoServer | None = None
        self.replica_set: MongoReplicaSet | None = None
        if replica_set:
            timeout_ms = PRODUCTION_ELECTION_TIMEOUT_MS
            self.replica_set = MongoReplicaSet(
                self.workdir / "replica-set", election_timeout_ms=timeout_ms, cache_gb=MONGO_CACHE_GB
            )
        else:
            self.mongo = MongoServer(self.workdir / "mongo", cache_gb=MONGO_CACHE_GB)
        self.sidecars: dict[str, SidecarProcess] = {}

    @property
    def mongo_uri(self) -> str:
        return self.replica_set.uri if self.replica_set else self.mongo.uri  # type: ignore[union-attr]

    def start(self, timeout: float = 60.0) -> None:
        if self.replica_set:
            self.replica_set.start()
        else:
            assert self.mongo is not None
            self.mongo.start()
        if self.history_window is not None:
            self._set_history_window(self.history_window)
        env = {
            "GOQ_MONGODB_URI": self.mongo_uri,
            "GOQ_HMAC_KEYS": hmac_keys({"bench": b"b" * 32}),
            "GOQ_QUEUE_SPEC": QUEUE_SPEC,
            "GOQ_LOG_LEVEL": "WARNING",
            **self.extra_env,
        }
        self.sidecars = local_sidecars(list(self.identities), self.workdir / "sidecars", env)
        if self.peer_tls:
            self._mount_certificates()
        if len(self.identities) <= 2:
            for sidecar in self.sidecars.values():
                sidecar.start(timeout=timeout)
            if self.peer_tls:
                self._check_tls()
            return
        # Launched a wave at a time (a hundred Python processes starting at once would only thrash the cores),
        # each wave waited for together: ``start`` with no time to wait launches the process and gives up
        # waiting at once, which is all we ask of it here.
        everyone = list(self.sidecars.values())
        for first in range(0, len(everyone), WAVE):
            wave = everyone[first : first + WAVE]
            for sidecar in wave:
                with contextlib.suppress(DevEnvError):
                    sidecar.start(timeout=0.0)
            deadline = time.monotonic() + timeout
            while wave:
                for sidecar in wave:
                    if sidecar.process is None or not sidecar.process.alive():
                        if sidecar.starts < PORT_ATTEMPTS and sidecar.move_off_taken_port():
                            sidecar.launch()
                            continue
                        raise DevEnvError(f"sidecar {sidecar.identity} exited while starting:\n{sidecar.log()[-2000:]}")
                wave = [s for s in wave if not s.is_ready()]
                if wave and time.monotonic() > deadline:
                    raise DevEnvError(f"{len(wave)} sidecars were not ready in {timeout:g} s, e.g. {wave[0].identity}")
                time.sleep(0.2)

    def _mount_certificates(self) -> None:
        """Each sidecar's certificate in a directory of its own, the files a mounted Secret would hold."""
        now = datetime.datetime.now(datetime.UTC)
        authority = new_identity_authority(now)
        for name, sidecar in self.sidecars.items():
            issued = issue_identity(
                authority,
                Address(name, sidecar.namespace),
                trust_domain="cluster.local",
                cluster_domain="cluster.local",
                now=now,
                lifetime=datetime.timedelta(days=1),
            )
            directory = self.workdir / "tls" / name
            directory.mkdir(parents=True)
            for file, data in issued.to_secret_data().items():
                (directory / file).write_bytes(data)
            sidecar.env["GOQ_TLS_DIR"] = str(directory)

    def _check_tls(self) -> None:
        """Each sidecar's peer port answers a TLS handshake with its own certificate (a slip in the setup
        would otherwise measure plaintext and call it TLS)."""
        for name, sidecar in self.sidecars.items():
            directory = self.workdir / "tls" / name
            context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
            context.load_cert_chain(str(directory / "tls.crt"), str(directory / "tls.key"))
            context.check_hostname = False
            context.set_alpn_protocols(["h2"])
            host, port = sidecar.peer_target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as raw, context.wrap_socket(raw) as tls:
                names = [v for k, v in tls.getpeercert().get("subjectAltName", ()) if k == "URI"]
            print(f"  mutual TLS between the sidecars: {name} as {', '.join(map(str, names))}", flush=True)

    @property
    def producer(self) -> SidecarProcess:
        return self.sidecars[self.identities[0]]

    @property
    def consumer(self) -> SidecarProcess:
        return self.sidecars[self.identities[-1]]

    def stats(self) -> dict[str, dict[str, int]]:
        """Every sidecar's Stats, by identity."""
        return {name: stats_of(s.grpc_target) for name, s in self.sidecars.items() if s.process}

    def pids(self) -> dict[str, int]:
        pids = {name: s.process.pid for name, s in self.sidecars.items() if s.process}
        if self.mongo and self.mongo.process:
            pids["mongod"] = self.mongo.process.pid
        if self.replica_set:
            for index, member in enumerate(self.replica_set.processes):
                if member:
                    pids[f"mongod {index}"] = member.pid
        return pids

    def checkpoint(self) -> None:
        """Have mongod write what it holds dirty now (``fsync``), not in the middle of the next phase."""
        for uri in self.member_uris():
            with MongoClient(uri) as client:
                client.admin.command("fsync")

    def _set_history_window(self, seconds: int) -> None:
        """How long WiredTiger keeps old versions of documents for reads at a past time (GoQ makes none):
        every update or delete of a message's document writes its old version to the history store while
        this window lasts (docs/deploy.md)."""
        for uri in self.member_uris():
            with MongoClient(uri) as client:
                client.admin.command({"setParameter": 1, "minSnapshotHistoryWindowInSeconds": seconds})

    def member_uris(self) -> list[str]:
        """One direct connection string per mongod: what each member wrote is its own."""
        if self.replica_set:
            return [f"mongodb://127.0.0.1:{port}/?directConnection=true" for port in self.replica_set.ports]
        return [self.mongo_uri]

    def bytes_written(self) -> int:
        """What every mongod has written so far, data files and journal (``serverStatus``'s WiredTiger
        block manager and log), summed over the members: the store's cost of a message is the difference."""
        total = 0
        for uri in self.member_uris():
            with MongoClient(uri) as client:
                tiger = client.admin.command("serverStatus")["wiredTiger"]
            total += int(tiger["block-manager"]["bytes written"]) + int(tiger["log"]["log bytes written"])
        return total

    def describe(self) -> dict[str, Any]:
        store = "replica set of 3" if self.replica_set else "one mongod"
        described = {"identities": list(self.identities), "env": dict(self.extra_env), "mongodb": store}
        return {**described, "peer_tls": self.peer_tls, "history_window": self.history_window}

    def stop(self) -> None:
        """Stop everything and remove the data: a backlog run leaves gigabytes of it."""
        for sidecar in self.sidecars.values():
            sidecar.stop()
        if self.replica_set:
            self.replica_set.stop()
        if self.mongo:
            self.mongo.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
