"""A real three-member MongoDB replica set on free loopback ports, for tests of elections.

Each member is a ``mongod`` (``find_mongod``) with its own port, data directory and PID, tied to this
process like ``MongoServer``'s, so that even a killed test run leaves none behind. Elections are made fast
for tests: members heartbeat every 500 ms and call an election after 2 s without a primary (MongoDB's
defaults are 2 s and 10 s), so a killed primary is replaced in about 3 s; a primary stepped down is
replaced in about 1 s. Majority writes need two of the three members up.
"""

import contextlib
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from bson import ObjectId
from pymongo import MongoClient
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from goq.devenv import processes
from goq.devenv.errors import DevEnvError
from goq.devenv.mongo import JOURNAL_COMMIT_INTERVAL_MS, SNAPSHOT_HISTORY_SECONDS, find_mongod
from goq.devenv.ports import free_ports, is_listening

log = logging.getLogger("goq.devenv")

REPLICA_SET: Final = "goqrs"
HEARTBEAT_MS: Final = 500
ELECTION_TIMEOUT_MS: Final = 2000
"""Short for tests; far shorter than production's 10 s would call elections on a busy machine."""
STEP_DOWN_SECONDS: Final = 10
"""How long a stepped-down primary may not stand for election again."""
SHUTDOWN_WAIT_MS: Final = 1000
"""How long a SIGTERM'd member waits to hand over before it shuts down anyway."""
CACHE_GB: Final = 0.25
"""WiredTiger's cache per member: its minimum (three members and other tests share the machine)."""


class MongoReplicaSet:
    """``members`` ``mongod`` processes forming one replica set; ``stop`` then ``start`` restarts them on
    the same ports and data.

    Every member is started from one thread this object owns: a child is tied to the thread that started
    it (``PR_SET_PDEATHSIG``), so a member restarted from a short-lived thread (``asyncio.to_thread``)
    would otherwise die with that thread.
    """

    def __init__(
        self,
        workdir: Path,
        members: int = 3,
        *,
        election_timeout_ms: int = ELECTION_TIMEOUT_MS,
        cache_gb: float = CACHE_GB,
    ) -> None:
        if members < 1:
            raise DevEnvError(f"a replica set needs at least one member, got {members}")
        self.workdir = workdir
        self.cache_gb = cache_gb
        """WiredTiger's cache per member, in GB (the benchmark gives each as much as its single mongod)."""
        self.ports = free_ports(members)
        self.election_timeout_ms = election_timeout_ms
        """``electionTimeoutMillis`` of a first start (MongoDB's default is 10,000, as in production)."""
        self.processes: list[processes.ServerProcess | None] = [None] * members
        self._launcher: ThreadPoolExecutor | None = None

    @property
    def uri(self) -> str:
        """The connection string naming every member; clients find the primary themselves."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"mongodb://{hosts}/?replicaSet={REPLICA_SET}"

    def start(self, timeout: float = 90.0) -> float:
        """Start every member, initiate the set (on a first start), wait for a primary; the seconds it took."""
        started = time.monotonic()
        for index in range(len(self.ports)):
            self._launch(index)
        for index in range(len(self.ports)):
            self._wait_listening(index, timeout)
        self._initiate()
        self.wait_for_primary(timeout)
        took = time.monotonic() - started
        log.info("replica set %s ready on ports %s in %.1f s", REPLICA_SET, self.ports, took)
        return took

    def stop(self) -> None:
        """Stop every member cleanly: SIGTERM to all at once (one by one, each primary in turn would wait
        for the others to catch up before stepping down), then wait for each."""
        running = [p for p in self.processes if p is not None and p.alive()]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        for process in running:
            process.stop(timeout=30)
        self.processes = [None] * len(self.ports)
        self._close_launcher()

    def kill(self) -> None:
        """``kill -9`` of every member."""
        for index in range(len(self.ports)):
            self.kill_member(index)
        self._close_launcher()

    def kill_member(self, index: int) -> None:
        """``kill -9`` of one member, as a crash of its machine."""
        process = self.processes[index]
        if process is not None:
            process.kill()
            self.processes[index] = None

    def restart_member(self, index: int, timeout: float = 60.0) -> None:
        """Start a stopped or killed member again on its port and data; returns once it accepts connections
        (it rejoins the set as a secondary, rolling back what it wrote that no majority confirmed)."""
        process = self.processes[index]
        if process is not None and process.alive():
            raise DevEnvError(f"member {index} (pid {process.pid}) still runs; kill or stop it first")
        self._launch(index)
        self._wait_listening(index, timeout)

    def primary(self) -> int:
        """The index of the current primary; ``DevEnvError`` if there is none right now."""
        found = self._primary()
        if found is None:
            raise DevEnvError(f"replica set {REPLICA_SET} has no primary right now (ports {self.ports})")
        return found

    def wait_for_primary(self, timeout: float = 30.0) -> int:
        """Wait until some member is primary; its index."""
        deadline = time.monotonic() + timeout
        while (found := self._primary()) is None:
            if time.monotonic() > deadline:
                raise DevEnvError(f"replica set {REPLICA_SET} elected no primary within {timeout:.0f} s")
            time.sleep(0.1)
        return found

    def step_down(self, timeout: float = 30.0) -> int:
        """``replSetStepDown`` on the primary, and wait for another member to be elected; the new primary."""
        old = self.wait_for_primary(timeout)
        deadline = time.monotonic() + timeout
        while True:
            self._ask_to_step_down(old)
            # Under load the others may not win an election before the old primary may stand again: then it
            # is asked again, until another member is primary or the time is up.
            again = time.monotonic() + STEP_DOWN_SECONDS + 1
            while (new := self._primary()) is None or new == old:
                if time.monotonic() > deadline:
                    raise DevEnvError(f"no member but {old} became primary within {timeout:.0f} s of its step-down")
                if new == old and time.monotonic() > again:
                    break
                time.sleep(0.05)
            else:
                return new

    def _ask_to_step_down(self, index: int) -> None:
        with contextlib.suppress(ConnectionFailure, OperationFailure), self._direct(index) as client:
            # It drops its connections; it refuses when no secondary caught up in time (asked again then).
            client.admin.command("replSetStepDown", STEP_DOWN_SECONDS, secondaryCatchUpPeriodSecs=5)

    def kill_primary(self) -> int:
        """``kill -9`` of the current primary; its index (``restart_member`` brings it back)."""
        index = self.wait_for_primary()
        self.kill_member(index)
        return index

    def _launch(self, index: int) -> None:
        port = self.ports[index]
        if is_listening(port):
            raise DevEnvError(f"port {port} is already in use; cannot start replica set member {index} there")
        member = self.workdir / f"member-{index}"
        dbpath = member / "data"
        dbpath.mkdir(parents=True, exist_ok=True)
        argv = [
            str(find_mongod()),
            "--replSet", REPLICA_SET,
            "--bind_ip", "127.0.0.1",
            "--port", str(port),
            "--nounixsocket",
            "--dbpath", str(dbpath.resolve()),
            "--wiredTigerCacheSizeGB", str(self.cache_gb),
            "--oplogSize", "128",
            "--setParameter", "ttlMonitorSleepSecs=1",
            # SIGTERM steps a primary down and waits for a secondary to catch up, up to 15 s by default: all
            # members stopping at once never do.
            "--setParameter", f"shutdownTimeoutMillisForSignaledShutdown={SHUTDOWN_WAIT_MS}",
            "--journalCommitInterval", str(JOURNAL_COMMIT_INTERVAL_MS),  # see MongoServer.start
            "--setParameter", f"minSnapshotHistoryWindowInSeconds={SNAPSHOT_HISTORY_SECONDS}",  # the same
        ]  # fmt: skip
        if self._launcher is None:
            self._launcher = ThreadPoolExecutor(1, thread_name_prefix="mongod-launcher")
        name = f"mongod member {index}"
        future = self._launcher.submit(processes.start, name, argv, member / "mongod.log")
        self.processes[index] = future.result()

    def _wait_listening(self, index: int, timeout: float) -> None:
        process = self.processes[index]
        assert process is not None
        port = self.ports[index]
        processes.wait_until("accepting connections", lambda: is_listening(port), process, timeout)

    def _close_launcher(self) -> None:
        if self._launcher is not None:
            self._launcher.shutdown(wait=True)
            self._launcher = None

    def _direct(self, index: int) -> MongoClient[dict[str, object]]:
        return MongoClient(
            "127.0.0.1",
            self.ports[index],
            directConnection=True,
            serverSelectionTimeoutMS=1000,
            connectTimeoutMS=1000,
            socketTimeoutMS=5000,
        )

    def _initiate(self) -> None:
        config = {
            "_id": REPLICA_SET,
            "members": [{"_id": i, "host": f"127.0.0.1:{port}"} for i, port in enumerate(self.ports)],
            "settings": {"heartbeatIntervalMillis": HEARTBEAT_MS, "electionTimeoutMillis": self.election_timeout_ms},
        }
        with self._direct(0) as client:
            try:
                client.admin.command("replSetInitiate", config)
            except OperationFailure as exc:
                if exc.code != 23:  # AlreadyInitialized: a restart on existing data
                    raise DevEnvError(f"replSetInitiate failed on port {self.ports[0]}: {exc}") from exc

    def _primary(self) -> int | None:
        """The member that says it is a writable primary; of two (an old one not yet told), the newer."""
        claims: list[tuple[ObjectId, int]] = []
        for index, process in enumerate(self.processes):
            if process is None or not process.alive():
                continue
            try:
                with self._direct(index) as client:
                    hello = client.admin.command("hello")
            except PyMongoError:
                continue
            if hello.get("isWritablePrimary"):
                claims.append((hello.get("electionId") or ObjectId("0" * 24), index))
        return max(claims)[1] if claims else None
