"""The HMAC key ring rotates without a gap: new keys sign late, old keys verify long."""

import json
from pathlib import Path

import pytest

from goq.errors import ConfigError
from goq.keyring import ACTIVE_ENTRY, KEY_BYTES, SCHEDULE_ANNOTATION, KeyRing
from goq.operator.keys import retire

DAY = 86400.0


def test_a_fresh_ring_has_one_256_bit_key_that_signs_at_once() -> None:
    ring = KeyRing.generate(now=1000.0)
    [key] = ring.keys
    assert len(key.material) == KEY_BYTES == 32
    assert ring.signing_key(1000.0) is key


def test_key_material_never_shows_in_repr() -> None:
    ring = KeyRing.generate(now=0.0, material=b"\x01" * 32)
    assert "\\x01" not in repr(ring)
    assert "\\x01" not in repr(ring.to_secret(0.0))


def test_two_rings_get_different_keys() -> None:
    assert KeyRing.generate(0.0).keys[0].material != KeyRing.generate(0.0).keys[0].material


def test_a_rotated_key_signs_only_after_propagation_and_the_old_one_still_verifies() -> None:
    ring = KeyRing.generate(0.0, key_id="old")
    rotated = ring.rotated(now=10 * DAY, propagation=120.0, retention=7 * DAY, key_id="new")
    assert [k.id for k in rotated.keys] == ["old", "new"]
    assert rotated.signing_key(10 * DAY + 60).id == "old"
    assert rotated.signing_key(10 * DAY + 121).id == "new"
    assert rotated.find("old") is not None


def test_keys_past_retention_are_dropped_but_never_the_one_that_signs() -> None:
    ring = KeyRing.generate(0.0, key_id="k1")
    ring = ring.rotated(now=1 * DAY, propagation=60, retention=2 * DAY, key_id="k2")
    ring = ring.rotated(now=5 * DAY, propagation=60, retention=2 * DAY, key_id="k3")
    assert [k.id for k in ring.keys] == ["k2", "k3"]  # k1 made 5 days ago: gone; k2 still signs until k3 may


def test_the_secret_is_one_entry_per_key_and_active_naming_the_signer_as_the_sidecar_reads_it() -> None:
    ring = KeyRing.generate(0.0, key_id="k1", material=b"a" * 32).rotated(100.0, 10.0, DAY, "k2", b"b" * 32)
    before = ring.to_secret(105.0)
    assert before.data == {"k1": b"a" * 32, "k2": b"b" * 32, ACTIVE_ENTRY: b"k1"}
    assert ring.to_secret(111.0).data[ACTIVE_ENTRY] == b"k2"
    schedule = json.loads(before.annotations[SCHEDULE_ANNOTATION])
    assert [k["id"] for k in schedule["keys"]] == ["k1", "k2"]
    assert KeyRing.from_secret(before.data, before.annotations) == ring


def test_a_hand_made_secret_without_schedule_signs_with_its_active_key() -> None:
    ring = KeyRing.from_secret({"a": b"x" * 32, "b": b"y" * 32, ACTIVE_ENTRY: b"b\n"})
    assert ring.signing_key(0.0).id == "b"
    assert {k.id for k in ring.keys} == {"a", "b"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "damaged"),
        ({ACTIVE_ENTRY: b"a"}, "lists no keys"),
        ({ACTIVE_ENTRY: b"z", "a": b"x" * 32}, "active key 'z' is not among its keys"),
        ({ACTIVE_ENTRY: b"a", "a": b"short"}, "5 bytes long"),
    ],
)
def test_a_damaged_secret_is_a_clear_error(data: dict[str, bytes], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KeyRing.from_secret(data)


@pytest.mark.parametrize("key_id", ["active", ".hidden", "a/b", "-x"])
def test_key_ids_must_be_secret_entries_other_than_active(key_id: str) -> None:
    with pytest.raises(ConfigError, match="must be a Secret key"):
        KeyRing.generate(0.0, key_id=key_id)


def test_mounted_as_a_volume_the_secret_is_what_goq_keys_dir_expects(tmp_path: Path) -> None:
    """The sidecar reads GOQ_KEYS_DIR as one file per key (name = id, >= 32 raw bytes) and ``active``."""
    ring = KeyRing.generate(0.0).rotated(100.0, 10.0, DAY)
    for name, content in ring.to_secret(200.0).data.items():  # what the kubelet writes for a Secret volume
        (tmp_path / name).write_bytes(content)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    active = files.pop("active").decode()
    assert active == ring.signing_key(200.0).id
    assert set(files) == {k.id for k in ring.keys}
    assert all(len(content) >= 32 and not name.startswith(".") for name, content in files.items())


def test_a_key_asked_to_retire_goes_only_once_its_successor_has_signed_for_the_propagation_delay() -> None:
    ring = KeyRing.generate(0.0, key_id="k1").rotated(now=100.0, propagation=60.0, retention=DAY, key_id="k2")

    still_signing, waiting = retire(ring, {"k1"}, now=150.0, propagation=60.0)
    assert [k.id for k in still_signing.keys] == ["k1", "k2"]  # k1 still signs
    assert waiting == {"k1"}
    not_settled, waiting = retire(ring, {"k1"}, now=200.0, propagation=60.0)
    assert [k.id for k in not_settled.keys] == ["k1", "k2"]  # k2 signs, but not yet in every sidecar
    assert waiting == {"k1"}
    retired, waiting = retire(ring, {"k1", "nosuchkey"}, now=220.0, propagation=60.0)
    assert [k.id for k in retired.keys] == ["k2"]
    assert waiting == set()
    kept, waiting = retire(ring, {"k2"}, now=1000.0, propagation=60.0)
    assert [k.id for k in kept.keys] == ["k1", "k2"]  # the key that signs never goes
    assert waiting == {"k2"}
