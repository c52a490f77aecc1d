"""Nodes sharing one machine: one that stops while another runs leaves the machine's shared changes to it."""

from pathlib import Path

import pytest

from goq.devenv.node import cleanup, netns
from goq.devenv.node.record import NodeRecord


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /run/netns, a shared path the kubelet makes, a kernel setting and the hand-over file."""
    monkeypatch.setattr(netns, "NETNS_DIR", tmp_path / "netns")
    (tmp_path / "netns").mkdir()
    shared = tmp_path / "var-log-pods"
    monkeypatch.setattr(cleanup, "SHARED_PATHS", (str(shared),))
    monkeypatch.setattr(cleanup, "SHARED_STATE", tmp_path / "shared.json")
    return tmp_path


def _record(machine: Path, name: str, sysctls: dict[str, str] | None = None) -> Path:
    own = machine / f"run-{name}"
    own.mkdir()
    paths = [str(machine / "var-log-pods"), str(own)] if sysctls is not None else [str(own)]
    record = NodeRecord(name, 0, "h", "n", "p", str(machine), "v", created_paths=paths, sysctls=sysctls or {})
    (machine / "netns" / name).touch()
    path = machine / f"{name}.json"
    record.save(path)
    return path


def test_the_first_node_stopping_first_leaves_the_shared_path_to_the_last(machine: Path) -> None:
    (machine / "var-log-pods").mkdir()  # made by the first node's kubelet, used by both
    first = _record(machine, "goq-node-0", sysctls={})
    second = _record(machine, "goq-node-1")

    (machine / "netns" / "goq-node-0").unlink()  # the first node's namespace is gone once it stops
    assert cleanup.teardown(first) == []
    assert (machine / "var-log-pods").is_dir(), "removed under the running node's feet"
    assert not (machine / "run-goq-node-0").exists()

    (machine / "netns" / "goq-node-1").unlink()
    assert cleanup.teardown(second) == []
    assert not (machine / "var-log-pods").exists(), "the last node out left the shared path behind"
    assert not (machine / "shared.json").exists()


def test_a_node_alone_removes_what_it_made(machine: Path) -> None:
    (machine / "var-log-pods").mkdir()
    only = _record(machine, "goq-node-0", sysctls={})
    (machine / "netns" / "goq-node-0").unlink()
    assert cleanup.teardown(only) == []
    assert not (machine / "var-log-pods").exists()
