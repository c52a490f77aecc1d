"""Incremental HMAC-SHA256 over a streamed body, under a key of the sidecar's keyring.

The standard library's ``hmac`` (OpenSSL underneath), as ``goq.signing`` uses for envelopes."""

import hmac

from goq.signing import Keyring, SignatureError


def body_mac(keyring: Keyring, key_id: str) -> "hmac.HMAC":
    """A fresh HMAC under the key that verifies ``key_id``: feed it the body's bytes as they stream."""
    try:
        key = keyring.verifying_key(key_id)
    except SignatureError as exc:
        raise SignatureError(exc.reason, f"large body: {exc}") from None
    return hmac.new(key, digestmod="sha256")


def sending_mac(keyring: Keyring, to: str | None) -> tuple[str, "hmac.HMAC"]:
    """The key id to name and a fresh HMAC under the active key for namespace ``to`` (``NoKeyError`` if none)."""
    key_id, key = keyring.signing_key(to)
    return key_id, hmac.new(key, digestmod="sha256")


def verify_body(mac: "hmac.HMAC", expected: bytes, key_id: str) -> None:
    """Raise ``SignatureError`` unless the body fed to ``mac`` has the HMAC ``expected`` (constant time)."""
    if not hmac.compare_digest(mac.digest(), expected):
        raise SignatureError("bad-signature", f"large body does not match its HMAC (key {key_id!r})")
