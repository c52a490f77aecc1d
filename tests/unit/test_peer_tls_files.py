"""How a sidecar checks the TLS files it is given, with the standard library's OpenSSL (no ``cryptography``):
a pair that belongs together loads, anything else is refused with the file named."""

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from goq.errors import ConfigError
from goq.operator.x509_issuing import Authority, new_authority, sign_leaf
from goq.sidecar.adapters.peer_tls import TlsFiles, describe

NOW = datetime.datetime.now(datetime.UTC)
SPIFFE = "spiffe://example.org/ns/shop/goq/orders"


def leaf(ca: Authority) -> tuple[bytes, bytes]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(SPIFFE), x509.DNSName("goq-orders.shop.svc")]
    day = datetime.timedelta(days=1)
    return sign_leaf(ca, "orders", names, not_before=NOW - day, not_after=NOW + day)


@pytest.fixture
def ca() -> Authority:
    return new_authority("test-ca", NOW, datetime.timedelta(days=30))


def test_a_certificate_with_its_key_and_a_ca_bundle_load(ca: Authority) -> None:
    cert, key = leaf(ca)
    TlsFiles(cert, key, ca.cert).check(Path("/tls"))


def test_a_key_of_another_certificate_is_refused_naming_both_files(ca: Authority) -> None:
    cert, _ = leaf(ca)
    _, other_key = leaf(ca)
    with pytest.raises(ConfigError, match=r"GOQ_TLS_DIR /tls: tls\.key is not the key of tls\.crt"):
        TlsFiles(cert, other_key, ca.cert).check(Path("/tls"))


def test_an_encrypted_key_is_refused_rather_than_asked_a_password_for(ca: Authority) -> None:
    cert, key = leaf(ca)
    loaded = serialization.load_pem_private_key(key, password=None)
    encrypted = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ConfigError, match=r"tls\.crt and tls\.key do not load"):
        TlsFiles(cert, encrypted, ca.cert).check(Path("/tls"))


@pytest.mark.parametrize("bundle", [b"", b"not a certificate", "caf\u00e9".encode("latin-1")])
def test_a_ca_bundle_without_a_certificate_is_refused(ca: Authority, bundle: bytes) -> None:
    cert, key = leaf(ca)
    with pytest.raises(ConfigError, match=r"ca\.crt holds no PEM certificate"):
        TlsFiles(cert, key, bundle).check(Path("/tls"))


def test_a_certificate_that_is_not_pem_is_refused(ca: Authority) -> None:
    _, key = leaf(ca)
    with pytest.raises(ConfigError, match=r"tls\.crt and tls\.key do not load"):
        TlsFiles(b"garbage", key, ca.cert).check(Path("/tls"))


def test_the_log_names_the_certificates_spiffe_id_and_its_expiry(ca: Authority) -> None:
    cert, _ = leaf(ca)
    until = x509.load_pem_x509_certificate(cert).not_valid_after_utc
    assert describe(cert) == f"{SPIFFE}, valid until {until.strftime('%b %e %H:%M:%S %Y GMT')}"
