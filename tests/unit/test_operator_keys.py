"""The HMAC key ring rotates without a gap: new keys sign late, old keys verify long."""

import pytest

from goq.errors import ConfigError
from goq.keyring import INDEX_KEY, KEY_BYTES, KeyRing

DAY = 86400.0


def test_a_fresh_ring_has_one_256_bit_key_that_signs_at_once() -> None:
    ring = KeyRing.generate(now=1000.0)
    [key] = ring.keys
    assert len(key.material) == KEY_BYTES == 32
    assert ring.signing_key(1000.0) is key


def test_key_material_never_shows_in_repr() -> None:
    ring = KeyRing.generate(now=0.0, material=b"\x01" * 32)
    assert "\\x01" not in repr(ring)
    assert "material" not in repr(ring)


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


def test_the_secret_layout_round_trips() -> None:
    ring = KeyRing.generate(0.0).rotated(100.0, 10.0, DAY)
    data = ring.to_secret_data()
    assert INDEX_KEY in data
    assert KeyRing.from_secret_data(data) == ring


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "damaged"),
        ({INDEX_KEY: b'{"keys": []}'}, "lists no keys"),
        ({INDEX_KEY: b'{"keys": [{"id": "a", "created": 0, "notBefore": 0}]}'}, "damaged"),
        ({INDEX_KEY: b'{"keys": [{"id": "a", "created": 0, "notBefore": 0}]}', "key-a": b"short"}, "5 bytes long"),
    ],
)
def test_a_damaged_secret_is_a_clear_error(data: dict[str, bytes], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KeyRing.from_secret_data(data)
