"""Incremental HMAC-SHA256 over a streamed body, under a key of the sidecar's keyring.

The standard library's ``hmac`` (OpenSSL underneath), as ``goq.signing`` uses for envelopes."""

import hmac

from goq.signing import Keyring, SignatureError


def body_mac(keyring: Keyring, key_id: str) -> "hmac.HMAC":
    """A fresh HMAC under ``key_id``: feed it the body's bytes as they stream."""
    key = keyring.keys.get(key_id)
    if key is None:
        raise SignatureError("unknown-key", f"large body signed with unknown key {key_id!r}")
    return hmac.new(key, digestmod="sha256")


def verify_body(mac: "hmac.HMAC", expected: bytes, key_id: str) -> None:
    """Raise ``SignatureError`` unless the body fed to ``mac`` has the HMAC ``expected`` (constant time)."""
    if not hmac.compare_digest(mac.digest(), expected):
        raise SignatureError("bad-signature", f"large body does not match its HMAC (key {key_id!r})")
