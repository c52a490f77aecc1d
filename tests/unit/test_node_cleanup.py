"""Nodes sharing one machine: the last node to stop restores the machine as the first one found it."""

from pathlib import Path

import pytest

from goq.devenv.node import cleanup, mountns, netns
from goq.devenv.node.record import NodeRecord

SETTING = "vm/overcommit_memory"


def _no_ip(*args: str, check: bool = True) -> None:
    raise AssertionError(f"a unit test ran `ip {' '.join(args)}` on the machine")


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for /run/netns (absent: the first node's ``ip netns add`` makes it), /proc/sys and the state file."""
    monkeypatch.setattr(netns, "NETNS_DIR", tmp_path / "netns")
    monkeypatch.setattr(netns, "_ip", _no_ip)  # the machine's real namespaces (other engineers' nodes) are not ours
    monkeypatch.setattr(mountns, "RUN_DIR", tmp_path / "run")
    monkeypatch.setattr(cleanup, "SHARED_PATHS", (str(tmp_path / "netns"),))
    monkeypatch.setattr(cleanup, "MACHINE_STATE", tmp_path / "nodes.json")
    monkeypatch.setattr(cleanup, "SYSCTL_DIR", tmp_path / "sys")
    monkeypatch.setattr(cleanup, "KERNEL_SETTINGS", (SETTING,))
    (tmp_path / "sys" / "vm").mkdir(parents=True)
    (tmp_path / "sys" / SETTING).write_text("0\n")
    return tmp_path


def _start(machine: Path, name: str, owner: str = "") -> Path:
    """What a node does to the shared state: take its name, ``ip netns add``, join; its kubelet sets the kernel."""
    record = NodeRecord(name, 0, "h", "n", "p", str(machine), "v", owner=owner or name)
    path = machine / f"{name}.json"
    with cleanup.machine_lock():
        cleanup.claim(record, lambda: record.save(path))
        made_netns_dir = not (machine / "netns").exists()
        (machine / "netns").mkdir(exist_ok=True)
        (machine / "netns" / name).touch()
        cleanup.join(record, made_netns_dir)
        record.save(path)
    (machine / "sys" / SETTING).write_text("1\n")
    return path


def _stop(machine: Path, name: str) -> list[str]:
    (machine / "netns" / name).unlink()  # what `ip netns del` does
    return cleanup.teardown(machine / f"{name}.json")


@pytest.mark.parametrize("first_out", ["goq-node-0", "goq-node-1"])
def test_the_last_node_out_restores_the_kernel_and_removes_the_shared_path(machine: Path, first_out: str) -> None:
    _start(machine, "goq-node-0")
    _start(machine, "goq-node-1")  # it finds the kernel set by the first node's kubelet: not the machine's
    last_out = "goq-node-1" if first_out == "goq-node-0" else "goq-node-0"

    assert _stop(machine, first_out) == []
    assert (machine / "sys" / SETTING).read_text().strip() == "1", "restored under the running node's feet"
    assert (machine / "netns").is_dir(), "removed under the running node's feet"
    assert not (machine / "run" / first_out).exists()

    assert _stop(machine, last_out) == []
    assert (machine / "sys" / SETTING).read_text().strip() == "0"
    assert not (machine / "netns").exists(), "the last node out left the shared path behind"
    assert not (machine / "nodes.json").exists()


def test_a_node_alone_restores_what_it_changed(machine: Path) -> None:
    _start(machine, "goq-node-0")
    assert _stop(machine, "goq-node-0") == []
    assert (machine / "sys" / SETTING).read_text().strip() == "0"
    assert not (machine / "netns").exists()
    assert not (machine / "run" / "goq-node-0").exists()


def test_the_shared_path_stays_while_it_holds_namespaces_not_goqs(machine: Path) -> None:
    _start(machine, "goq-node-0")
    (machine / "netns" / "someone-elses").touch()
    assert _stop(machine, "goq-node-0") == []
    assert (machine / "netns" / "someone-elses").exists()


def test_a_stale_state_gives_way_to_the_machine_as_it_is_now(machine: Path) -> None:
    """A state no running node holds (its nodes were never stopped) is read afresh; its paths stay the nodes'."""
    (machine / "nodes.json").write_text(f'{{"sysctls": {{"{SETTING}": "7"}}, "paths": ["{machine / "netns"}"]}}')
    (machine / "netns").mkdir()
    _start(machine, "goq-node-0")
    assert _stop(machine, "goq-node-0") == []
    assert (machine / "sys" / SETTING).read_text().strip() == "0"
    assert not (machine / "netns").exists()


def test_a_late_teardown_of_a_stopped_node_leaves_the_node_now_of_its_name_alone(machine: Path) -> None:
    """Names are reused: a late janitor or a second ``down`` of the old record must not tear down the new node."""
    _start(machine, "goq-node-0", owner="old")
    assert _stop(machine, "goq-node-0") == []
    (machine / "goq-node-0.json").rename(machine / "old.json")
    _start(machine, "goq-node-0", owner="new")

    assert cleanup.teardown(machine / "old.json") == []
    assert (machine / "netns" / "goq-node-0").exists(), "the new node's namespace was deleted"
    assert (machine / "run" / "goq-node-0" / "owner").read_text() == "new"
    assert (machine / "sys" / SETTING).read_text().strip() == "1", "the new node's kernel settings were undone"
