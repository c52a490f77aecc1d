"""The local pod runner's pure parts: DNS answers, a container's environment and argv, pod status."""

import asyncio
import datetime
import os
import struct
import sys
from pathlib import Path

import pytest

from goq.devenv import tables
from goq.devenv.errors import DevEnvError
from goq.devenv.podrunner import atomic, dns, environment, volumes
from goq.devenv.podrunner.addresses import PodAddresses
from goq.devenv.podrunner.containers import Backoff, Container
from goq.devenv.podrunner.images import Images, is_sidecar, repository
from goq.devenv.podrunner.statuses import phase


def query(name: str, qtype: int = dns.TYPE_A) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def lookup(name: str) -> list[str] | None:
    return {
        "goq-billing.shop.svc.cluster.local": ["127.9.0.2", "127.9.0.3"],
        "goq-idle.shop.svc.cluster.local": [],
    }.get(name)


def test_dns_answers_a_services_ready_pods_as_a_records() -> None:
    response = dns.answer(query("goq-billing.shop.svc.cluster.local"), lookup)
    ident, flags, _, answers = struct.unpack("!HHHH", response[:8])
    assert ident == 0x1234
    assert flags & 0x8000  # a response
    assert flags & 0x000F == 0
    assert answers == 2
    assert response.endswith(
        bytes([127, 9, 0, 2]) + struct.pack("!HHHIH", 0xC00C, 1, 1, dns.TTL, 4) + bytes([127, 9, 0, 3])
    )


def test_dns_says_nxdomain_for_unknown_names_and_nothing_for_other_record_types() -> None:
    unknown = dns.answer(query("goq-shipping.shop.svc.cluster.local"), lookup)
    assert struct.unpack("!H", unknown[2:4])[0] & 0x000F == dns.RCODE_NXDOMAIN
    aaaa = dns.answer(query("goq-billing.shop.svc.cluster.local", qtype=28), lookup)
    assert struct.unpack("!HH", aaaa[2:4] + aaaa[6:8]) == (0x8500, 0)
    with pytest.raises(dns.DnsFormatError):
        dns.answer(b"\0\1", lookup)


class Objects:
    async def secret(self, namespace: str, name: str) -> dict[str, bytes]:
        if name != "goq-mongodb":
            raise volumes.MissingObjectError(f"Secret {namespace}/{name} not found")
        return {"uri": b"mongodb://127.0.0.1:27017/?replicaSet=rs0"}

    async def config_map(self, namespace: str, name: str) -> dict[str, str]:
        return {"level": "DEBUG"}


POD = {
    "metadata": {"name": "billing-1", "namespace": "shop", "labels": {"app": "billing"}},
    "spec": {"nodeName": "goq-local"},
    "status": {"podIP": "127.9.0.2"},
}


async def test_a_containers_env_resolves_the_downward_api_secrets_config_maps_and_mount_paths() -> None:
    container = {
        "env": [
            {"name": "GOQ_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "GOQ_MONGODB_URI", "valueFrom": {"secretKeyRef": {"name": "goq-mongodb", "key": "uri"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
            {"name": "GOQ_KEYS_DIR", "value": "/var/run/goq/hmac"},
            {"name": "GREETING", "value": "hello $(APP)"},
        ]
    }
    mounted = {"/var/run/goq/hmac": Path("/tmp/pod/volumes/keys")}
    env = await environment.container_env(Objects(), POD, container, mounted)
    assert env == {
        "GOQ_POD_IP": "127.9.0.2",
        "APP": "billing",
        "GOQ_MONGODB_URI": "mongodb://127.0.0.1:27017/?replicaSet=rs0",
        "LEVEL": "DEBUG",
        "GOQ_KEYS_DIR": "/tmp/pod/volumes/keys",
        "GREETING": "hello billing",
    }


async def test_a_missing_secret_keeps_the_container_waiting_unless_optional() -> None:
    ref = {"name": "nowhere", "key": "uri"}
    with pytest.raises(volumes.MissingObjectError, match="nowhere"):
        await environment.container_env(
            Objects(), POD, {"env": [{"name": "X", "valueFrom": {"secretKeyRef": ref}}]}, {}
        )
    optional = {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {**ref, "optional": True}}}]}
    assert await environment.container_env(Objects(), POD, optional, {}) == {}


def test_the_sidecar_listens_on_its_pod_address_and_asks_the_runners_dns() -> None:
    env = environment.sidecar_network("127.9.0.2", "127.0.0.1:5353", "/tmp/sa.kubeconfig")
    assert env["GOQ_GRPC_LISTEN"] == "127.9.0.2:7701"
    assert env["GOQ_PEER_LISTEN"] == "127.9.0.2:7702"
    assert env["GOQ_HEALTH_LISTEN"] == "127.9.0.2:7703"
    assert env["GOQ_DNS_SERVER"] == "127.0.0.1:5353"
    assert env["GOQ_KUBECONFIG"] == "/tmp/sa.kubeconfig"


def test_images_map_to_local_programs_by_dockers_rules(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "billing.py").write_text("")
    images = Images(tmp_path)
    assert repository("registry.example/goq/goq-sidecar:0.1.0@sha256:ab") == "goq-sidecar"
    assert is_sidecar({"image": "goq/goq-sidecar:0.1.0"})
    assert images.argv({"image": "goq/goq-example-billing:1", "args": ["--x"]}) == [
        sys.executable,
        str(tmp_path / "shop" / "billing.py"),
        "--x",
    ]
    assert images.argv({"image": "python:3.11", "command": ["python", "-c", "pass"]}) == [sys.executable, "-c", "pass"]
    with pytest.raises(DevEnvError, match="not runnable here"):
        images.argv({"image": "nginx:1.27"})


def test_a_pod_comes_back_to_its_former_address_and_pods_never_share_one() -> None:
    addresses = PodAddresses(octet=251)
    first = addresses.allocate("shop/billing")
    second = addresses.allocate("shop/orders")
    assert first != second
    assert first.startswith("127.251.")
    addresses.release(first)
    assert addresses.allocate("shop/billing") == first


async def test_a_pod_is_pending_until_every_container_ran_and_succeeds_only_when_all_ended_well(tmp_path: Path) -> None:
    app, sidecar = Container("app", tmp_path / "a.log"), Container("goq-sidecar", tmp_path / "s.log")
    assert phase([app, sidecar]) == "Pending"
    app.start([sys.executable, "-c", "pass"], {}, tmp_path)
    sidecar.start([sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path)
    assert phase([app, sidecar]) == "Running"
    for container in (app, sidecar):
        assert container.popen is not None
        await asyncio.to_thread(container.popen.wait, 30)
        assert container.reap("Never", Backoff())
    assert [c.last_exit.code if c.last_exit else None for c in (app, sidecar)] == [0, 3]
    assert phase([app, sidecar]) == "Failed"
    assert phase([app]) == "Succeeded"


FIGURES = {"ready": "1/1", "podCount": 1, "sendQueue": 0, "receiveQueue": 2, "delivered": 39, "poisoned": 1}


def test_the_goqueue_table_has_kubectls_columns_and_ages() -> None:
    now = datetime.datetime(2026, 11, 28, 7, 0, 0, tzinfo=datetime.UTC)
    items = [
        {
            "metadata": {"name": "orders", "creationTimestamp": "2026-11-28T06:58:20Z"},
            "status": {
                "ready": "1/1",
                "podCount": 1,
                "sendQueue": 0,
                "receiveQueue": 2,
                "delivered": 39,
                "poisoned": 1,
            },
        },
        {"metadata": {"name": "billing", "creationTimestamp": "2026-11-28T06:59:37Z"}},
    ]
    assert tables.render([tables.COLUMNS, *tables.rows(items, now)]).splitlines() == [
        "NAME      READY   PODS   SENDQ   RECVQ   DELIVERED   POISONED   AGE",
        "orders    1/1     1      0       2       39          1          100s",
        "billing                                                         23s",
    ]
    assert tables.age("2026-11-28T05:00:00Z", now) == "120m"
    assert tables.age("2026-11-20T07:00:00Z", now) == "8d"


class Ring:
    """A key ring Secret whose content a test changes, read as the pod runner reads it."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.reads = 0

    async def secret(self, namespace: str, name: str) -> dict[str, bytes]:
        if name != "goq-hmac-keys":
            raise volumes.MissingObjectError(f"Secret {namespace}/{name} not found")
        self.reads += 1
        return dict(self.files)

    async def config_map(self, namespace: str, name: str) -> dict[str, str]:
        return {"level": "DEBUG"}


KEYS_POD = {
    "metadata": {"name": "billing-1", "namespace": "shop"},
    "spec": {"volumes": [{"name": "keys", "secret": {"secretName": "goq-hmac-keys"}}]},
}


def layout(folder: Path) -> dict[str, str]:
    """Each visible entry -> where its symlink points; the kubelet's hidden entries apart."""
    return {p.name: os.readlink(p) for p in folder.iterdir() if not p.name.startswith("..")}


async def test_a_secret_volume_is_laid_out_as_the_kubelet_does_with_every_key_a_link_through_data(
    tmp_path: Path,
) -> None:
    ring = Ring({"k1": b"o" * 32, "active": b"k1"})
    folders = await volumes.materialize(ring, KEYS_POD, tmp_path)
    keys = folders["keys"]
    assert layout(keys) == {"k1": "..data/k1", "active": "..data/active"}
    data = os.readlink(keys / "..data")
    assert data.startswith("..")
    assert (keys / data).is_dir()
    assert not (keys / data).is_symlink()
    assert (keys / "active").read_bytes() == b"k1"
    assert sorted(p.name for p in keys.iterdir()) == sorted(["..data", data, "active", "k1"])


async def test_a_changed_secret_is_swapped_in_whole_through_data_and_the_old_content_removed(tmp_path: Path) -> None:
    ring = Ring({"k1": b"o" * 32, "active": b"k1"})
    keys = (await volumes.materialize(ring, KEYS_POD, tmp_path))["keys"]
    before = os.readlink(keys / "..data")
    ring.files = {"k2": b"n" * 32, "active": b"k2"}

    assert await volumes.refresh(ring, KEYS_POD, tmp_path) == ["keys"]

    after = os.readlink(keys / "..data")
    assert after != before
    assert not (keys / before).exists(), "the old timestamped directory stays behind"
    assert not (keys / "..data_tmp").exists()
    assert layout(keys) == {"k2": "..data/k2", "active": "..data/active"}, "k1's link outlived the key"
    assert (keys / "active").read_bytes() == b"k2"
    assert (keys / "k2").read_bytes() == b"n" * 32


async def test_an_unchanged_secret_is_not_swapped_so_a_follower_of_data_sees_no_change(tmp_path: Path) -> None:
    ring = Ring({"k1": b"o" * 32, "active": b"k1"})
    keys = (await volumes.materialize(ring, KEYS_POD, tmp_path))["keys"]
    before = os.readlink(keys / "..data"), (keys / "k1").stat().st_ino

    assert await volumes.refresh(ring, KEYS_POD, tmp_path) == []

    assert ring.reads == 2, "the Secret was not read again"
    assert (os.readlink(keys / "..data"), (keys / "k1").stat().st_ino) == before


async def test_a_secret_gone_keeps_the_volumes_last_content(tmp_path: Path) -> None:
    ring = Ring({"k1": b"o" * 32, "active": b"k1"})
    keys = (await volumes.materialize(ring, KEYS_POD, tmp_path))["keys"]
    gone = {**KEYS_POD, "spec": {"volumes": [{"name": "keys", "secret": {"secretName": "deleted"}}]}}

    assert await volumes.refresh(ring, gone, tmp_path) == []

    assert (keys / "active").read_bytes() == b"k1"


async def test_a_projected_volume_holds_its_sources_items_under_their_paths(tmp_path: Path) -> None:
    pod = {
        "metadata": {"name": "billing-1", "namespace": "shop"},
        "spec": {
            "volumes": [
                {
                    "name": "all",
                    "projected": {
                        "sources": [
                            {"secret": {"name": "goq-hmac-keys", "items": [{"key": "active", "path": "keys/active"}]}},
                            {"configMap": {"name": "settings"}},
                            {"secret": {"name": "absent", "optional": True}},
                        ]
                    },
                }
            ]
        },
    }
    folder = (await volumes.materialize(Ring({"k1": b"o" * 32, "active": b"k1"}), pod, tmp_path))["all"]
    assert layout(folder) == {"keys": "..data/keys", "level": "..data/level"}
    assert (folder / "keys" / "active").read_bytes() == b"k1"
    assert (folder / "level").read_text() == "DEBUG"


def test_a_volume_path_cannot_leave_the_volume(tmp_path: Path) -> None:
    for path in ("../escape", "/etc/passwd", "..data"):
        with pytest.raises(DevEnvError, match="must be relative"):
            atomic.write(tmp_path / "v", {path: b"x"})
