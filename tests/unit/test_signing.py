"""Signatures cover the exact envelope bytes; any change, an unknown key or a wrong key is refused."""

from pathlib import Path

import pytest

from goq.errors import ConfigError
from goq.signing import Keyring, SignatureError

OLD, NEW = b"o" * 32, b"n" * 32


def test_a_signed_body_verifies() -> None:
    ring = Keyring({"k1": OLD}, active="k1")
    key_id, signature = ring.sign(b"body")
    assert key_id == "k1"
    assert len(signature) == 32
    ring.verify(b"body", key_id, signature)


def test_one_changed_byte_is_refused() -> None:
    ring = Keyring({"k1": OLD}, active="k1")
    key_id, signature = ring.sign(b"body")
    with pytest.raises(SignatureError, match="does not match") as refused:
        ring.verify(b"bodY", key_id, signature)
    assert refused.value.reason == "bad-signature"


def test_a_tampered_signature_is_refused() -> None:
    ring = Keyring({"k1": OLD}, active="k1")
    key_id, signature = ring.sign(b"body")
    with pytest.raises(SignatureError):
        ring.verify(b"body", key_id, bytes([signature[0] ^ 1]) + signature[1:])


def test_an_unknown_key_id_is_refused() -> None:
    sender = Keyring({"k9": OLD}, active="k9")
    receiver = Keyring({"k1": OLD}, active="k1")
    key_id, signature = sender.sign(b"body")
    with pytest.raises(SignatureError, match="unknown key 'k9'") as refused:
        receiver.verify(b"body", key_id, signature)
    assert refused.value.reason == "unknown-key"


def test_during_rotation_messages_signed_with_the_older_key_are_accepted() -> None:
    before = Keyring({"old": OLD}, active="old")
    during = Keyring({"old": OLD, "new": NEW}, active="new")
    key_id, signature = before.sign(b"in flight")
    during.verify(b"in flight", key_id, signature)
    assert during.sign(b"x")[0] == "new"


def test_short_keys_and_a_missing_active_key_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="has 5 bytes; at least 32"):
        Keyring({"k": b"short"}, active="k")
    with pytest.raises(ConfigError, match="active key 'k2' is not among the keys"):
        Keyring({"k1": OLD}, active="k2")


def test_keys_read_from_a_mounted_secret_directory(tmp_path: Path) -> None:
    (tmp_path / "old").write_bytes(OLD)
    (tmp_path / "new").write_bytes(NEW)
    (tmp_path / "active").write_text("new\n")
    (tmp_path / "..data").mkdir()  # what a Secret volume mounts beside the files
    ring = Keyring.from_directory(tmp_path)
    assert ring.keys == {"old": OLD, "new": NEW}
    assert ring.active == "new"


def test_an_unreadable_key_directory_says_which(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"cannot read HMAC keys from {tmp_path}"):
        Keyring.from_directory(tmp_path)
