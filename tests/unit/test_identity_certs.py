"""Identity certificates issued by the operator's CA: their names, their verification, their renewal, and
how a sidecar loads them."""

import datetime
from pathlib import Path

import pytest
from cryptography import x509

from goq.errors import ConfigError
from goq.identity import Address
from goq.operator.identity_certs import (
    TlsBundle,
    issue_identity,
    needs_issue,
    new_identity_authority,
)
from goq.sidecar.adapters.peer_tls import MutualTls, TlsFiles

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
ORDERS = Address("orders", "shop")
NAMES = {"trust_domain": "example.org", "cluster_domain": "cluster.local"}


def test_an_identity_certificate_names_its_spiffe_id_and_service_and_is_signed_by_the_ca() -> None:
    ca = new_identity_authority(T0)
    issued = issue_identity(ca, ORDERS, now=T0, lifetime=DAY, **NAMES)
    cert = x509.load_pem_x509_certificate(issued.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org/ns/shop/goq/orders"]
    assert sans.get_values_for_type(x509.DNSName) == ["goq-orders.shop.svc", "goq-orders.shop.svc.cluster.local"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert))
    assert cert.not_valid_after_utc == T0 + DAY
    assert issued.ca == ca.cert
    assert TlsBundle.from_secret_data(issued.to_secret_data()) == issued


def test_a_certificate_is_renewed_after_two_thirds_of_its_lifetime() -> None:
    ca = new_identity_authority(T0)
    issued = issue_identity(ca, ORDERS, now=T0, lifetime=3 * DAY, **NAMES)
    minutes = datetime.timedelta(minutes=5)  # valid from five minutes before issue
    assert not needs_issue(issued, ca, ORDERS, now=T0 + 2 * DAY - 2 * minutes, **NAMES)
    assert needs_issue(issued, ca, ORDERS, now=T0 + 2 * DAY, **NAMES)


def test_a_missing_foreign_or_misnamed_certificate_is_issued_anew() -> None:
    ca = new_identity_authority(T0)
    issued = issue_identity(ca, ORDERS, now=T0, lifetime=DAY, **NAMES)
    assert needs_issue(None, ca, ORDERS, now=T0, **NAMES)
    assert needs_issue(issued, new_identity_authority(T0), ORDERS, now=T0, **NAMES)
    assert needs_issue(issued, ca, Address("billing", "shop"), now=T0, **NAMES)
    assert needs_issue(issued, ca, ORDERS, now=T0, trust_domain="other.org", cluster_domain="cluster.local")


def test_the_sidecar_loads_a_certificate_with_its_key_and_refuses_a_key_of_another(tmp_path: Path) -> None:
    ca = new_identity_authority(T0)
    issued = issue_identity(ca, ORDERS, now=T0, lifetime=DAY, **NAMES)
    other = issue_identity(ca, ORDERS, now=T0, lifetime=DAY, **NAMES)
    for name, data in issued.to_secret_data().items():
        (tmp_path / name).write_bytes(data)
    assert TlsFiles.load(tmp_path) == TlsFiles(issued.cert, issued.key, issued.ca)
    tls = MutualTls(tmp_path)
    (tmp_path / "tls.key").write_bytes(other.key)  # a read between the two files of a renewal
    assert not tls.poll()
    assert tls.files.key == issued.key
    (tmp_path / "tls.crt").write_bytes(other.cert)
    assert tls.poll()
    assert (tls.files.cert, tls.reloads) == (other.cert, 1)
    (tmp_path / "ca.crt").unlink()
    with pytest.raises(ConfigError, match=r"cannot read ca\.crt"):
        TlsFiles.load(tmp_path)
