"""A sidecar follows its mounted key Secret: a swapped ring is put in force, a half-written one is not, and an
unchanged directory is not read again."""

import asyncio
import logging
from pathlib import Path

import pytest

from goq.devenv.secret_volume import SecretVolume
from goq.sidecar.adapters.keys_watching import KeyringFollower
from goq.sidecar.adapters.secret_following import fingerprint
from goq.signing import Keyring

K1, K2 = b"1" * 32, b"2" * 32


def follower(tmp_path: Path, files: dict[str, bytes]) -> tuple[SecretVolume, KeyringFollower]:
    volume = SecretVolume(tmp_path / "hmac", files)
    ring = Keyring.from_directory(volume.path)
    watcher = KeyringFollower(volume.path, ring)
    assert watcher.poll() is False  # the first look reads once and finds the ring it started with
    return volume, watcher


def test_a_kubelet_style_swap_puts_the_new_ring_in_force(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    volume, watcher = follower(tmp_path, {"k1": K1, "active": b"k1"})
    caplog.set_level(logging.INFO, "goq.sidecar.keys")

    volume.write({"k1": K1, "k2": K2, "active": b"k2\n"})

    assert watcher.poll() is True
    assert watcher.current() == Keyring({"k1": K1, "k2": K2}, "k2")
    assert watcher.reloads == 1
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == ["added k2; removed none; active k2 (was k1)"]

    volume.write({"k2": K2, "active": b"k2"})

    assert watcher.poll() is True
    assert set(watcher.current().keys) == {"k2"}
    assert watcher.reloads == 2
    assert caplog.records[-1].getMessage().endswith("added none; removed k1; active k2")


def test_an_unchanged_directory_is_not_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, watcher = follower(tmp_path, {"k1": K1, "active": b"k1"})
    reads: list[Path] = []
    original = Keyring.from_directory

    def counting(directory: Path) -> Keyring:
        reads.append(directory)
        return original(directory)

    monkeypatch.setattr(Keyring, "from_directory", counting)
    assert [watcher.poll() for _ in range(5)] == [False] * 5
    assert reads == []
    assert watcher.reloads == 0


def test_the_same_keys_written_again_are_no_reload(tmp_path: Path) -> None:
    volume, watcher = follower(tmp_path, {"k1": K1, "active": b"k1"})
    before = fingerprint(volume.path)
    volume.write({"k1": K1, "active": b"k1"})
    assert fingerprint(volume.path) != before  # the kubelet wrote a new directory...
    assert watcher.poll() is False  # ...with the same ring: nothing to put in force
    assert watcher.reloads == 0


def test_a_half_written_ring_keeps_the_last_good_one_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volume, watcher = follower(tmp_path, {"k1": K1, "active": b"k1"})
    caplog.set_level(logging.INFO, "goq.sidecar.keys")

    old = volume.swap({"k1": K1, "k2": K2, "active": b"k2"})  # ``active`` names k2; k2's link is not there yet

    assert [watcher.poll() for _ in range(3)] == [False] * 3
    assert watcher.current() == Keyring({"k1": K1}, "k1")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "active key 'k2' is not among the keys (k1)" in warnings[0].getMessage()
    assert "keeping keys k1 (active k1)" in warnings[0].getMessage()

    volume.link(old)

    assert watcher.poll() is True
    assert watcher.current().active == "k2"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_a_plain_directory_edited_in_place_is_followed_too(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir()
    (directory / "k1").write_bytes(K1)
    (directory / "active").write_text("k1")
    watcher = KeyringFollower(directory, Keyring.from_directory(directory))
    (directory / "k2").write_bytes(K2)
    (directory / "active").write_text("k2")
    assert watcher.poll() is True
    assert watcher.current().active == "k2"


async def test_the_running_follower_swaps_the_ring_within_its_interval(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "hmac", {"k1": K1, "active": b"k1"})
    watcher = KeyringFollower(volume.path, Keyring.from_directory(volume.path), interval=0.01)
    task = asyncio.create_task(watcher.run())
    try:
        volume.write({"k1": K1, "k2": K2, "active": b"k2"})
        for _ in range(500):  # up to 5 s
            if watcher.current().active == "k2":
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert watcher.current().active == "k2"
    assert watcher.reloads == 1
