"""Certificates and keys for a local control plane: a CA, serving and client certificates, as PEM files.

The certificates come from the operator's X.509 issuer (``goq.operator.x509_issuing``: ECDSA P-256, SHA-256);
this module only names them and writes them down. The CA is unconstrained and states its key usages, each
certificate is valid for a year from five minutes ago.
"""

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from goq.operator.x509_issuing import Authority, general_name, new_authority, new_key_pair, sign_leaf

_VALIDITY = datetime.timedelta(days=365)
_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _write(pair: KeyPair, cert: bytes, key: bytes) -> KeyPair:
    pair.cert.write_bytes(cert)
    pair.key.write_bytes(key)
    pair.key.chmod(0o600)
    return pair


def make_ca(directory: Path, common_name: str = "goq-local-ca") -> KeyPair:
    """Create a self-signed certificate authority in ``directory`` (ca.crt, ca.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    authority = new_authority(
        common_name, datetime.datetime.now(datetime.UTC), _VALIDITY, path_length=None, key_usage=True
    )
    return _write(KeyPair(directory / "ca.crt", directory / "ca.key"), authority.cert, authority.key)


def issue(
    ca: KeyPair,
    directory: Path,
    stem: str,
    common_name: str,
    *,
    organization: str | None = None,
    hosts: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
) -> KeyPair:
    """Issue a leaf certificate signed by ``ca`` as ``<stem>.crt`` and ``<stem>.key``.

    ``hosts`` become subject alternative names (IP addresses or DNS names).
    """
    usages = [
        u for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client)) if on
    ]
    now = datetime.datetime.now(datetime.UTC)
    cert, key = sign_leaf(
        Authority(ca.cert.read_bytes(), ca.key.read_bytes()),
        common_name,
        [general_name(h) for h in hosts],
        not_before=now - _SKEW,
        not_after=now + _VALIDITY,
        usages=usages,
        organization=organization,
    )
    return _write(KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key"), cert, key)


def make_signing_key(directory: Path, stem: str) -> KeyPair:
    """A bare key pair (``<stem>.key`` private, ``<stem>.pub`` public), e.g. for service-account tokens."""
    private, public = new_key_pair()
    return _write(KeyPair(cert=directory / f"{stem}.pub", key=directory / f"{stem}.key"), public, private)
