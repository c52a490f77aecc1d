"""The one X.509 issuer: certificate authorities and the leaf certificates they sign, as PEM bytes. Pure.

Every certificate GoQ makes comes from here: the webhook's CA and serving certificate
(``goq.operator.certificates``), the identity CA and the sidecars' certificates (``goq.operator.identity_certs``),
and the dev environment's local PKI (``goq.devenv.certs``, which may import the operator). All keys are ECDSA
P-256 (quick to make, accepted by Kubernetes 1.20), all signatures SHA-256. It lives with the operator, not in
the shared package, because the client installs without ``cryptography``.
"""

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key, PEM: kept in a Secret so that what it signed stays valid across restarts."""

    cert: bytes
    key: bytes


def backdate(validity: datetime.timedelta) -> datetime.timedelta:
    """How long before its issue a certificate is valid: five minutes of clock skew, less for a short-lived
    one (a tenth of its validity), whose renewal point would otherwise lie in the past. (A validity of zero
    or less, for tests of expired certificates, keeps the five minutes.)"""
    return min(_SKEW, validity / 10) if validity > datetime.timedelta(0) else _SKEW


def general_name(host: str) -> x509.GeneralName:
    """A subject alternative name for ``host``: an IP address when it parses as one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def new_authority(
    common_name: str,
    now: datetime.datetime,
    validity: datetime.timedelta,
    *,
    path_length: int | None = 0,
    key_usage: bool = False,
) -> Authority:
    """A self-signed CA, valid from a little before ``now`` (``backdate``: clock skew between the issuer and
    the peers) for ``validity``. The operator's CAs sign leaf certificates only (``path_length`` 0); the local
    PKI's is unconstrained (``None``) and states its key usages (``key_usage``: signing certificates, CRLs
    and digital signatures, critical)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate(validity))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    )
    if key_usage:
        builder = builder.add_extension(_CA_KEY_USAGE, critical=True)
    cert = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False).sign(
        key, hashes.SHA256()
    )
    return Authority(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def sign_leaf(
    authority: Authority,
    common_name: str,
    names: list[x509.GeneralName],
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    usages: list[x509.ObjectIdentifier] | None = None,
    organization: str | None = None,
) -> tuple[bytes, bytes]:
    """A new key and a certificate for it, signed by ``authority``: ``(cert PEM, key PEM)``. By default for
    both ends of a TLS connection (server and client auth). ``names`` become its subject alternative names
    (none: no such extension, as for a client certificate); ``organization`` joins the subject (Kubernetes
    reads it as the user's group)."""
    ca_cert = x509.load_pem_x509_certificate(authority.cert)
    ca_key = serialization.load_pem_private_key(authority.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    if usages is None:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def new_key_pair() -> tuple[bytes, bytes]:
    """A bare key pair, no certificate (e.g. to sign service-account tokens): ``(private PEM, public PEM)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _key_pem(key), public


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(pem, pkcs8, serialization.NoEncryption())
