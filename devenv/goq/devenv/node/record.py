"""What a node changed on the machine, written down before each change so that it can be undone.

The record is a JSON file in the node's work directory. ``cleanup.teardown`` reads it: after a normal
stop, after ``goq-dev node down`` from another process, and from the janitor after a killed test run.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Daemon:
    """A node daemon by PID, with its executable's name so that a reused PID is never signalled."""

    name: str
    pid: int
    executable: str


@dataclass
class NodeRecord:
    """The node's names and addresses and everything it changed; see the module docstring."""

    name: str
    index: int
    host_address: str
    node_address: str
    pod_cidr: str
    workdir: str
    veth: str
    service_cidr: str = ""
    """The node's ClusterIP range, routed to it from the host: the API server reaches webhook Services so."""
    network_created: bool = False
    route_added: bool = False
    service_route_added: bool = False
    cgroup: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)
    """Kernel settings the kubelet changes, as they were before the first running node started (``cleanup``)."""
    created_paths: list[str] = field(default_factory=list)
    """Paths outside ``workdir`` that did not exist before the node started: removed when it stops."""
    mount_roots: list[str] = field(default_factory=list)
    """Everything mounted at or under these (on the host) is unmounted when the node stops."""
    mount_namespace: str = ""
    """The file the node's mount namespace is bound to (``mountns``); its processes are killed on stop."""
    daemons: list[Daemon] = field(default_factory=list)
    owner: str = ""
    """This node's token, in ``/run/<node>/owner`` while it holds its name: names are reused once a node
    stops, and a teardown of an older record of the name (a late janitor, a repeated ``down``) must leave
    the node that holds it now alone."""

    @property
    def netns(self) -> str:
        """The network namespace's name (``ip netns``), the node's name."""
        return self.name

    def save(self, path: Path) -> None:
        """Write the record atomically: a janitor may read it at any moment."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "NodeRecord":
        """Read a record written by ``save``."""
        data = json.loads(path.read_text())
        data["daemons"] = [Daemon(**d) for d in data.get("daemons", [])]
        return cls(**data)
