"""GoQ on a real node, installed as users install it: one place for ``goq-dev up``, ``demo`` and the e2e tests.

A ``GoQCluster`` is the control plane, one ``RealNode``, MongoDB as a process of the node (a one-member
replica set on the node's address: Debian ships no mongod image to run as a pod), GoQ's images built from
its Dockerfiles and imported into the node's containerd, GoQ itself from ``kubectl apply -k manifests/``
(through ``install``'s overlay), and on request the shop example (``examples/shop/shop.yaml``, its images
built from ``examples/shop/Dockerfile``).

Use::

    cluster = GoQCluster(workdir, operator_env={"GOQ_STALE_AFTER": "3s"})
    cluster.start(examples=True)          # returns each step's seconds
    cluster.kubectl("-n", "shop", "logs", "deploy/billing", "-c", "app")
    cluster.stop()                        # undoes everything, whatever state start() reached

``detached=True`` leaves everything running after this process ends (``goq-dev up``): ``record()`` says
what to stop and ``stop_recorded`` stops it from that record.
"""

import json
import logging
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from goq.devenv import processes
from goq.devenv.errors import DevEnvError
from goq.devenv.kube import KubeControlPlane
from goq.devenv.mongo import find_mongod
from goq.devenv.node import binaries, cleanup, dockerfiles, install, netns
from goq.devenv.node.node import RealNode
from goq.devenv.node.runtime import Containerd

log = logging.getLogger("goq.devenv")

MONGODB_PORT: Final = 27017
MONGODB_SECRET: Final = "goq-mongodb"
"""The operator's source Secret (``goq-system``) with the MongoDB URI, copied into every GoQ namespace."""
OPERATOR_NAMESPACE: Final = "goq-system"
SHOP_MANIFEST: Final = dockerfiles.context_dir() / "examples" / "shop" / "shop.yaml"
SHOP_NAMESPACE: Final = "shop"


@dataclass
class Timings:
    """Each step's seconds, in the order they ran: for people (``goq-dev``) and for the tests' output."""

    steps: dict[str, float] = field(default_factory=dict)

    def add(self, step: str, started: float) -> None:
        self.steps[step] = time.monotonic() - started

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.steps.items())


class GoQCluster:
    """See the module docstring."""

    def __init__(
        self,
        workdir: Path,
        *,
        detached: bool = False,
        operator_env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.detached = detached
        self.operator_env = dict(operator_env or {})
        self.node = RealNode(workdir / "node", detached=detached)
        self.plane: KubeControlPlane | None = None
        self.mongod: processes.ServerProcess | None = None
        self.timings = Timings()

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (``KUBECONFIG`` for kubectl and goqctl)."""
        if self.plane is None:
            raise DevEnvError("the cluster is not started")
        return self.plane.kubeconfig

    @property
    def mongodb_uri(self) -> str:
        """MongoDB as the node's pods reach it (and this machine, through the node's veth)."""
        return f"mongodb://{self.node.record.node_address}:{MONGODB_PORT}/?replicaSet=rs0"

    def start(self, *, examples: bool = False) -> Timings:
        """Build what changed, start everything, install GoQ (and the shop); return once all of it is Ready."""
        started = time.monotonic()
        binaries.ensure()
        self.timings.add("node binaries", started)
        started = time.monotonic()
        archives = dockerfiles.ensure(dockerfiles.ALL_BUILDS if examples else dockerfiles.GOQ_BUILDS)
        self.timings.add("images (cached by content)", started)
        self.node.create_network()
        self.plane = KubeControlPlane(
            self.workdir / "kube", node_address=self.node.host_address, service_cidr=self.node.service_cidr
        )
        try:
            started = time.monotonic()
            self.plane.start(detached=self.detached)
            self.timings.add("control plane", started)
            started = time.monotonic()
            self.node.start(self.plane)
            self.timings.add("node Ready", started)
            started = time.monotonic()
            containerd = Containerd(
                self.node.record, binaries.runtime_dir(), binaries.tool_path(self.workdir / "tools")
            )
            dockerfiles.import_into(containerd, archives)
            self.timings.add("images imported", started)
            started = time.monotonic()
            self.mongod = start_mongod(self.node, self.workdir / "mongodb", detached=self.detached)
            self.timings.add("MongoDB", started)
            started = time.monotonic()
            self.install_goq()
            self.timings.add("GoQ installed, operator Ready", started)
            if examples:
                started = time.monotonic()
                self.apply_shop()
                self.timings.add("shop example Ready", started)
        except BaseException:
            self.stop()
            raise
        return self.timings

    def install_goq(self) -> None:
        """``kubectl apply -k`` of ``manifests/`` through the overlay, the MongoDB source Secret, then wait."""
        overlay = install.write_overlay(
            self.workdir / "install", mongodb_secret=MONGODB_SECRET, operator_env=self.operator_env
        )
        self.kubectl("apply", "-k", str(overlay))
        source = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": MONGODB_SECRET, "namespace": OPERATOR_NAMESPACE},
            "stringData": {"uri": self.mongodb_uri},
        }
        self.kubectl("apply", "-f", "-", stdin=json.dumps(source))
        self.kubectl("-n", OPERATOR_NAMESPACE, "rollout", "status", "deploy/goq-operator", "--timeout=240s")
        # The webhooks are registered by the leader once it runs: pods made before would go uninjected.
        deadline = time.monotonic() + 120
        while not self.kubectl("get", "mutatingwebhookconfiguration", "goq-sidecar-injector", check=False):
            if time.monotonic() > deadline:
                raise DevEnvError("the operator did not register its webhooks within 120 s: " + self.operator_logs())
            time.sleep(1)

    def apply_shop(self, *, orders: int | None = None, wait: bool = True) -> None:
        """The shop example as ``examples/shop/shop.yaml`` has it, on the images built here."""
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(shop_objects(orders)))
        if wait:
            for deployment in ("billing", "orders"):
                self.kubectl("-n", SHOP_NAMESPACE, "rollout", "status", f"deploy/{deployment}", "--timeout=240s")

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 300) -> str:
        """Run kubectl against the cluster; its output (or, ``check=False``, empty output on failure)."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}  # everything is local
        result = subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, env=env, check=False, timeout=timeout
        )
        if result.returncode != 0:
            if check:
                raise DevEnvError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
            return ""
        return result.stdout

    def operator_logs(self) -> str:
        """The operator pods' recent logs, for an error message."""
        return self.kubectl(
            "-n", OPERATOR_NAMESPACE, "logs", "-l", "app.kubernetes.io/name=goq-operator", "--tail=30", check=False
        )

    def record(self) -> dict[str, Any]:
        """What ``stop_recorded`` needs to stop a detached cluster from another process."""
        assert self.plane is not None
        servers = [*self.plane.servers, *([self.mongod] if self.mongod else [])]
        return {
            "servers": [{"name": s.name, "pid": s.pid, "executable": s.executable} for s in servers],
            "node_record": str(self.node.record_path),
            "kubeconfig": str(self.plane.kubeconfig),
            "mongodb_uri": self.mongodb_uri,
            "node": self.node.name,
        }

    def stop(self) -> list[str]:
        """Stop everything and undo what the node changed; return what could not be undone (empty: all)."""
        if self.mongod is not None:
            self.mongod.stop()
            self.mongod = None
        if self.plane is not None:
            self.plane.stop()  # first: its watches on the node's daemons would otherwise hold it for 15 s
        return self.node.stop()


def stop_recorded(record: Mapping[str, Any]) -> list[str]:
    """Stop a detached cluster from its ``record()``: the plane and MongoDB by PID, then the node."""
    for server in reversed(record["servers"]):
        if processes.pid_runs(server["pid"], server["executable"]):
            log.info("stopping %s (pid %d)", server["name"], server["pid"])
            processes.ServerProcess(server["name"], server["pid"], Path("/dev/null"), server["executable"]).stop()
    return cleanup.teardown(Path(record["node_record"]))


def start_mongod(node: RealNode, data: Path, *, detached: bool = False) -> processes.ServerProcess:
    """The sidecars' MongoDB as a process of the node, on its address, a one-member replica set.

    It runs in the node's network namespace, so stopping the node ends it whatever happened before.
    """
    data.mkdir(parents=True, exist_ok=True)
    address = node.record.node_address
    argv = netns.in_netns(
        node.record.netns,
        str(find_mongod()),
        *("--replSet", "rs0", "--bind_ip", address, "--port", str(MONGODB_PORT), "--dbpath", str(data)),
        *("--wiredTigerCacheSizeGB", "0.25", "--oplogSize", "128"),
    )
    server = processes.start("mongod", argv, data / "mongod.log", detached=detached)
    server.executable = "mongod"  # nsenter has exec'ed it
    client: MongoClient[dict[str, Any]] = MongoClient(
        address, MONGODB_PORT, directConnection=True, serverSelectionTimeoutMS=2000
    )
    with client:
        processes.wait_until("mongod answering", lambda: _pings(client), server, timeout=60)
        members = [{"_id": 0, "host": f"{address}:{MONGODB_PORT}"}]
        client.admin.command("replSetInitiate", {"_id": "rs0", "members": members})
        processes.wait_until(
            "mongod primary", lambda: bool(client.admin.command("hello")["isWritablePrimary"]), server, 60
        )
    return server


def _pings(client: MongoClient[dict[str, Any]]) -> bool:
    try:
        return bool(client.admin.command("ping")["ok"])
    except PyMongoError:
        return False


def shop_objects(orders: int | None = None) -> list[dict[str, Any]]:
    """``examples/shop/shop.yaml`` as is, but for its images (built here, tagged ``local``) and, if given,
    how many orders the orders program sends."""
    objects = [o for o in yaml.safe_load_all(SHOP_MANIFEST.read_text()) if o]
    for obj in objects:
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            program = container["image"].rsplit("/", 1)[-1].split(":")[0]  # goq-example-orders
            container["image"] = f"goq.local/{program}:{dockerfiles.TAG}"
            if orders is not None and program == "goq-example-orders":
                container["env"] = [*container.get("env", []), {"name": "ORDERS_COUNT", "value": str(orders)}]
    return objects
