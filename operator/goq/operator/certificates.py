"""The admission webhook's certificates: a private CA and a serving certificate it signs. Pure.

The operator makes them itself (no cert-manager needed), keeps them in a Secret so that restarts reuse
them, and renews them well before they expire; the caBundle of the webhook configurations follows. They are
made by the one X.509 issuer, ``goq.operator.x509_issuing``.
"""

import datetime
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from goq.operator.x509_issuing import general_name, new_authority, sign_leaf

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


def issue(hosts: tuple[str, ...], now: datetime.datetime) -> TlsBundle:
    """A new CA and a serving certificate for ``hosts`` (DNS names or IP addresses)."""
    authority = new_authority("goq-webhook-ca", now, VALIDITY)
    cert, key = sign_leaf(
        authority,
        hosts[0],
        [general_name(h) for h in hosts],
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
