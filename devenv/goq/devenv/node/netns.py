"""The node's network: a namespace of its own, joined to the host by a veth pair, pods routed through it.

Addresses come from 198.18.0.0/15, the range reserved for network testing, so they collide with no real
network the machine may sit on. Node ``n`` (0-63) gets the /30 ``198.18.0.4n``: the host's end of the veth
is ``.4n+1``, the node's ``.4n+2``; its pods get ``198.18.(n+1).0/24``, routed on the host via the node.
Nothing here is forwarded beyond the machine: the host does not forward and there is no masquerading.

Its Services' ClusterIPs are ``198.19.n.0/24``, also routed on the host via the node. That is how the API
server (on the host) calls a webhook behind a Service, the standard way: kube-apiserver resolves a
webhook's ``service`` reference to the Service's ClusterIP (unless ``--enable-aggregator-routing``), as
on a cluster whose control plane hosts run kube-proxy; here the packets cross the veth and kube-proxy's
rules in the node's namespace send them on to a ready endpoint. A range of the node's own, so that the
routes of two nodes never overlap.
"""

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Final

from goq.devenv.errors import DevEnvError
from goq.devenv.node.record import NodeRecord

MAX_NODES: Final = 64
NETNS_DIR: Final = Path("/run/netns")
PREFIX: Final = "goq-node-"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode:
        raise DevEnvError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def in_netns(name: str, *argv: str) -> list[str]:
    """``argv`` run in the node's network namespace only, in the host's mounts (not ``ip netns exec``).

    For processes of the node that need no node paths of their own (MongoDB, the cluster DNS add-on).
    The node's daemons run in its mount namespace too: ``mountns.enter``. ``ip netns exec`` would remount
    ``/sys`` in a mount namespace of its own for each command.
    """
    return ["nsenter", f"--net={NETNS_DIR / name}", *argv]


def plan(workdir: Path) -> NodeRecord:
    """Choose the first node number whose namespace does not exist yet; nothing is created here."""
    for index in range(MAX_NODES):
        name = f"{PREFIX}{index}"
        if not (NETNS_DIR / name).exists():
            return NodeRecord(
                name=name,
                index=index,
                host_address=f"198.18.0.{4 * index + 1}",
                node_address=f"198.18.0.{4 * index + 2}",
                pod_cidr=f"198.18.{index + 1}.0/24",
                service_cidr=f"198.19.{index}.0/24",
                workdir=str(workdir),
                veth=f"goq{index}h",
            )
    raise DevEnvError(f"{MAX_NODES} GoQ nodes exist already (ip netns list); stop one with `goq-dev node down`")


def create(record: NodeRecord, save: Callable[[], None]) -> None:
    """Create the namespace, the veth pair and the host's routes to the pods and Services; record each first.

    ``ip netns add`` makes ``/run/netns`` (a mount point) if missing: ``cleanup.join`` records that.
    """
    if exists(record.netns):  # another's: recorded as ours, a stop would delete it
        raise DevEnvError(f"network namespace {record.netns} exists already: plan() under cleanup.machine_lock()")
    record.network_created = True
    save()
    _ip("netns", "add", record.netns)
    peer = f"goq{record.index}n"
    _ip("link", "add", record.veth, "type", "veth", "peer", "name", peer)
    _ip("link", "set", peer, "netns", record.netns)
    _ip("addr", "add", f"{record.host_address}/30", "dev", record.veth)
    _ip("link", "set", record.veth, "up")
    inside = ("-n", record.netns)
    _ip(*inside, "link", "set", peer, "name", "eth0")
    _ip(*inside, "addr", "add", f"{record.node_address}/30", "dev", "eth0")
    _ip(*inside, "link", "set", "eth0", "up")
    _ip(*inside, "link", "set", "lo", "up")
    _ip(*inside, "route", "add", "default", "via", record.host_address)
    # Inside the node only: pods' traffic crosses eth0 <-> the CNI bridge. The host's setting is untouched.
    subprocess.run(
        ["ip", "netns", "exec", record.netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        check=True,
        capture_output=True,
    )
    record.route_added = True
    save()
    _ip("route", "add", record.pod_cidr, "via", record.node_address, "dev", record.veth)
    record.service_route_added = True
    save()
    _ip("route", "add", record.service_cidr, "via", record.node_address, "dev", record.veth)


def delete(record: NodeRecord) -> None:
    """Delete the route, the veth (both ends) and the namespace; what is already gone is skipped."""
    if record.route_added:
        _ip("route", "del", record.pod_cidr, "via", record.node_address, check=False)
    if record.service_route_added:
        _ip("route", "del", record.service_cidr, "via", record.node_address, check=False)
    if record.network_created:
        _ip("link", "del", record.veth, check=False)
        _ip("netns", "del", record.netns, check=False)


def routes_left(record: NodeRecord) -> list[str]:
    """Those of the node's routes on the host (to its pods, to its Services) that still exist."""
    added = ((record.pod_cidr, record.route_added), (record.service_cidr, record.service_route_added))
    return [cidr for cidr, ours in added if ours and _ip("route", "show", cidr, check=False).stdout.strip()]


def pids(name: str) -> list[int]:
    """The processes whose network namespace is the node's (daemons, and anything they left running)."""
    result = _ip("netns", "pids", name, check=False)
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def exists(name: str) -> bool:
    """Whether the node's namespace exists."""
    return (NETNS_DIR / name).exists()
