"""Incremental HMAC-SHA256 over a streamed body, under a key of the sidecar's keyring."""

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac

from goq.signing import Keyring, SignatureError


def body_mac(keyring: Keyring, key_id: str) -> hmac.HMAC:
    """A fresh HMAC under ``key_id``: feed it the body's bytes as they stream."""
    key = keyring.keys.get(key_id)
    if key is None:
        raise SignatureError("unknown-key", f"large body signed with unknown key {key_id!r}")
    return hmac.HMAC(key, hashes.SHA256())


def verify_body(mac: hmac.HMAC, expected: bytes, key_id: str) -> None:
    """Raise ``SignatureError`` unless the body fed to ``mac`` has the HMAC ``expected`` (constant time)."""
    try:
        mac.verify(expected)
    except InvalidSignature:
        raise SignatureError("bad-signature", f"large body does not match its HMAC (key {key_id!r})") from None
