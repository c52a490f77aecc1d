"""The admission webhook's certificates: a private CA and a serving certificate it signs. Pure.

The operator makes them itself (no cert-manager needed), keeps them in a Secret so that restarts reuse
them, and renews them well before they expire; the caBundle of the webhook configurations follows.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY: Final = datetime.timedelta(days=365)
RENEW_BEFORE: Final = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TlsBundle:
    """PEM bytes: a CA (the webhook's ``caBundle``, or the identity CA peers verify each other with), and a
    certificate with its key."""

    ca: bytes
    cert: bytes
    key: bytes

    def to_secret_data(self) -> dict[str, bytes]:
        """The Secret layout (``kubernetes.io/tls`` plus ``ca.crt``)."""
        return {"ca.crt": self.ca, "tls.crt": self.cert, "tls.key": self.key}

    @classmethod
    def from_secret_data(cls, data: dict[str, bytes]) -> "TlsBundle | None":
        """Read it back; ``None`` when a part is missing."""
        parts = [data.get(k) for k in ("ca.crt", "tls.crt", "tls.key")]
        if not all(parts):
            return None
        ca, cert, key = (p or b"" for p in parts)
        return cls(ca, cert, key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(hosts: tuple[str, ...], now: datetime.datetime) -> TlsBundle:
    """A new CA and a serving certificate for ``hosts`` (DNS names or IP addresses)."""
    authority = new_authority("goq-webhook-ca", now, VALIDITY)
    cert, key = sign_leaf(
        authority,
        hosts[0],
        [_san(h) for h in hosts],
        not_before=now - datetime.timedelta(minutes=5),
        not_after=now + VALIDITY,
        usages=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    return TlsBundle(ca=authority.cert, cert=cert, key=key)


def needs_renewal(current: TlsBundle | None, hosts: tuple[str, ...], now: datetime.datetime) -> bool:
    """Whether to issue anew: missing, unreadable, expiring within RENEW_BEFORE, or for other hosts."""
    if current is None:
        return True
    try:
        cert = x509.load_pem_x509_certificate(current.cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return True
    names = {str(v) for v in sans.get_values_for_type(x509.DNSName)}
    names |= {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    return cert.not_valid_after_utc - now < RENEW_BEFORE or not set(hosts) <= names


def ca_bundle(new: TlsBundle, previous: TlsBundle | None) -> bytes:
    """The new CA, plus the previous one while it is valid: a renewal never breaks a call in between."""
    if previous is None or previous.ca.startswith(new.ca):
        return new.ca
    end = b"-----END CERTIFICATE-----\n"
    newest_previous = previous.ca.split(end)[0] + end  # only one generation back
    return new.ca + newest_previous


# Issuing from a CA: the webhook's (made with each serving certificate) and the identity CA, which is kept
# (``goq.operator.identity_certs``).


@dataclass(frozen=True)
class Authority:
    """A CA's certificate and key, PEM: kept in a Secret so that what it signed stays valid across restarts."""

    cert: bytes
    key: bytes


def backdate(validity: datetime.timedelta) -> datetime.timedelta:
    """How long before its issue a certificate is valid: five minutes of clock skew, less for a short-lived
    one (a tenth of its validity), whose renewal point would otherwise lie in the past. (A validity of zero
    or less, for tests of expired certificates, keeps the five minutes.)"""
    skew = datetime.timedelta(minutes=5)
    return min(skew, validity / 10) if validity > datetime.timedelta(0) else skew


def new_authority(common_name: str, now: datetime.datetime, validity: datetime.timedelta) -> Authority:
    """A self-signed CA that signs leaf certificates only (path length 0), valid from a little before ``now``
    (``backdate``: clock skew between the operator and the peers)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate(validity))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
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
) -> tuple[bytes, bytes]:
    """A new key and a certificate for it, signed by ``authority``: ``(cert PEM, key PEM)``. By default for
    both ends of a TLS connection (server and client auth)."""
    ca_cert = x509.load_pem_x509_certificate(authority.cert)
    ca_key = serialization.load_pem_private_key(authority.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    usages = usages or [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(pem, pkcs8, serialization.NoEncryption())
