"""RabbitMQ as the benchmark runs it: Debian's rabbitmq-server in the foreground, in a private directory.

Not the system service: a node of our own with its own epmd, data, logs, cookie and free ports, both processes
started as our children and stopped by PID. The Erlang schedulers are told not to busy-wait, so that an idle
broker does not take CPU from the other systems measured in the same run.
"""

import shutil
import tempfile
from pathlib import Path

from goq.devenv import processes
from goq.devenv.ports import free_ports, is_listening

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = "/usr/bin/epmd"


class RabbitMQSystem:
    """One RabbitMQ node (3.10 on Debian 12) and its epmd on 127.0.0.1."""

    name = "RabbitMQ"
    system = "rabbitmq"

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="goq-bench-rabbitmq-"))
        self.port, self.dist_port, self.epmd_port = free_ports(3)
        self.epmd: processes.ServerProcess | None = None
        self.server: processes.ServerProcess | None = None

    def environment(self) -> dict[str, str]:
        home = self.workdir
        (home / "enabled_plugins").write_text("[].\n")
        (home / "rabbitmq-env.conf").write_text("")
        (home / "rabbitmq.conf").write_text("loopback_users = none\n")
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "RABBITMQ_ALLOW_INPUT": "1",  # exec the Erlang VM: the PID we hold is the broker's
            "RABBITMQ_NODENAME": f"goqbench{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": str(home / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(home / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_PID_FILE": str(home / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-noinput +sbwt none +sbwtdcpu none +sbwtdio none",
        }

    def start(self) -> None:
        env = self.environment()
        self.epmd = processes.start(
            "epmd", [EPMD, "-port", str(self.epmd_port), "-address", "127.0.0.1"], self.workdir / "epmd.log", env=env
        )
        processes.wait_until("listening", lambda: is_listening(self.epmd_port), self.epmd, timeout=15)
        self.server = processes.start("rabbitmq-server", [SERVER], self.workdir / "rabbitmq.log", env=env)
        processes.wait_until("listening for AMQP", lambda: is_listening(self.port), self.server, timeout=90)

    @property
    def target(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def pids(self) -> dict[str, int]:
        return {"rabbitmq (beam)": self.server.pid} if self.server else {}

    def stop(self) -> None:
        if self.server:
            self.server.stop(timeout=30)
        if self.epmd:
            self.epmd.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
