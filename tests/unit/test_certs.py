"""The local PKI issues certificates that verify against their CA and name the right hosts."""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from goq.devenv import certs
from goq.operator.identity_certs import new_identity_authority


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_issued_server_certificate_is_signed_by_the_ca_and_names_its_hosts(tmp_path: Path) -> None:
    ca = certs.make_ca(tmp_path)
    pair = certs.issue(ca, tmp_path, "web", "web", hosts=("127.0.0.1", "localhost"), server=True)
    cert, ca_cert = load(pair.cert), load(ca.cert)

    cert.verify_directly_issued_by(ca_cert)  # raises if the signature or issuer is wrong
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certificate_carries_its_group_as_organization(tmp_path: Path) -> None:
    ca = certs.make_ca(tmp_path)
    pair = certs.issue(ca, tmp_path, "admin", "goq-admin", organization="system:masters", client=True)
    subject = load(pair.cert).subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "goq-admin"


def test_private_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    ca = certs.make_ca(tmp_path)
    signing = certs.make_signing_key(tmp_path, "sa")
    assert ca.key.stat().st_mode & 0o777 == 0o600
    assert signing.key.stat().st_mode & 0o777 == 0o600


def test_signing_key_public_half_matches_its_private_half(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    pair = certs.make_signing_key(tmp_path, "sa")
    private = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    public = serialization.load_pem_public_key(pair.cert.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]


def test_one_issuer_makes_the_local_ca_unconstrained_with_key_usages_and_the_operators_for_leaves_only(
    tmp_path: Path,
) -> None:
    local = load(certs.make_ca(tmp_path).cert)
    operators = x509.load_pem_x509_certificate(new_identity_authority(datetime.datetime.now(datetime.UTC)).cert)

    assert local.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length is None
    usage = local.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert (usage.value.key_cert_sign, usage.value.crl_sign, usage.value.digital_signature) == (True, True, True)
    assert operators.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert not any(isinstance(e.value, x509.KeyUsage) for e in operators.extensions)
    for cert in (local, operators):
        assert cert.not_valid_before_utc < datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=4)
