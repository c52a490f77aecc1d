"""The file poison sink writes one JSON line per message, durably, rotates by size, and fails loudly."""

import base64
import json
from pathlib import Path

import pytest

from goq.errors import ConfigError
from goq.sidecar.adapters.poison.file_sink import FilePoisonSink
from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.ports.poison import PoisonSinkError, SinkContext


def record(i: int) -> PoisonRecord:
    return PoisonRecord(
        id=f"m{i}",
        owner="orders.default",
        direction="outbound",
        peer="billing.default",
        reason="max-attempts",
        detail="8 attempts failed",
        attempts=8,
        poisoned_at=1700000000.0,
        persistent=True,
        body=b"\x0a\x02m1" + bytes(200),
        key_id="k1",
        signature=b"s" * 32,
    )


def file_sizes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in directory.iterdir()}


def sink(path: Path, **options: object) -> FilePoisonSink:
    return FilePoisonSink(SinkContext("orders.default", {"path": str(path), **options}))


async def test_each_poisoned_message_is_a_json_line_with_what_a_redrive_needs(tmp_path: Path) -> None:
    path = tmp_path / "poison" / "orders.jsonl"
    await sink(path).put([record(1), record(2)])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["m1", "m2"]
    assert lines[0]["reason"] == "max-attempts"
    assert base64.b64decode(lines[0]["envelope"]) == record(1).body
    assert base64.b64decode(lines[0]["signature"]) == b"s" * 32


async def test_the_file_rotates_by_size_and_keeps_the_configured_backups(tmp_path: Path) -> None:
    path = tmp_path / "poison.jsonl"
    target = sink(path, maxBytes=2048, backups=2)
    for i in range(20):
        await target.put([record(i)])
    sizes = file_sizes(tmp_path)
    assert sorted(sizes) == ["poison.jsonl", "poison.jsonl.1", "poison.jsonl.2"]
    assert all(size <= 2048 for size in sizes.values())
    newest = json.loads(path.read_text().splitlines()[-1])
    assert newest["id"] == "m19"


async def test_an_unwritable_path_is_a_sink_failure_not_a_silent_loss(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a directory should be")
    with pytest.raises(PoisonSinkError, match="poison file"):
        await sink(tmp_path / "taken" / "poison.jsonl").put([record(1)])


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="needs option path"):
        FilePoisonSink(SinkContext("orders.default", {}))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) size; known: backups, maxBytes, path"):
        FilePoisonSink(SinkContext("orders.default", {"path": "/tmp/x", "size": 1}))
