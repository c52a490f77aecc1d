"""NATS JetStream as the benchmark runs it: Debian's nats-server, a private store directory, one free port."""

import shutil
import tempfile
from pathlib import Path

from goq.devenv import processes
from goq.devenv.ports import free_port, is_listening


class NatsSystem:
    """``nats-server -js`` on 127.0.0.1, started as our child and stopped by its PID."""

    name = "NATS JetStream"
    system = "nats"

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="goq-bench-nats-"))
        self.port = free_port()
        self.server: processes.ServerProcess | None = None

    def start(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        argv = [binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.workdir / "store")]
        self.server = processes.start("nats-server", argv, self.workdir / "nats.log")
        processes.wait_until("listening", lambda: is_listening(self.port), self.server, timeout=30)

    @property
    def target(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def pids(self) -> dict[str, int]:
        return {"nats-server": self.server.pid} if self.server else {}

    def stop(self) -> None:
        if self.server:
            self.server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
