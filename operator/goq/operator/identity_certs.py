"""The identity certificates of sidecars: the CA that signs them, what a namespace's TLS Secret holds for each
identity, and when either is renewed. Pure.

The operator is the identity authority: one CA, kept in a Secret of its namespace (``goq-identity-ca``),
signs for each GoQueue a certificate naming the identity, ``spiffe://<trust domain>/ns/<ns>/goq/<id>``
(URI SAN: what the receiving sidecar compares with an envelope's ``from``), and its Service,
``goq-<id>.<ns>.svc`` and ``goq-<id>.<ns>.svc.<cluster domain>`` (DNS SANs: what the sending sidecar
checks). One Secret per namespace, ``goq-identity-tls``, holds the certificate and key of each identity of
the namespace (``<id>.tls.crt``, ``<id>.tls.key``) and the trust bundle they share (``ca.crt``); the
webhook mounts only the pod's identity's keys of it, as ``tls.crt``, ``tls.key`` and ``ca.crt``, into the
sidecar (``GOQ_TLS_DIR``). A Secret holds at most 1 MiB: ``fits`` says whether one more identity does. A
certificate is renewed once two thirds of its lifetime have passed: the sidecars load the new one within
minutes, and the old one is still valid for a third of its lifetime.

The CA is rotated the same way, in two steps so that no handshake fails on the way (``plan_authority``):
after two thirds of its life a successor is made and only *published* (added to every trust bundle); once
the bundle has had time to reach every sidecar (the propagation delay) the successor *signs* and every
certificate is issued anew from it. The old CA stays in the bundle until it expires, and no certificate
outlives the CA that signed it, so a sidecar whose certificate is not yet renewed is still trusted.
"""

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from goq.identity import Address
from goq.names import TLS_BUNDLE_KEY, service_name, tls_cert_key, tls_key_key
from goq.operator.certificates import TlsBundle
from goq.operator.x509_issuing import Authority, backdate, new_authority, sign_leaf
from goq.spiffe import spiffe_id

__all__ = [
    "CA_SECRET",
    "CA_VALIDITY",
    "LIFETIME",
    "MAX_SECRET_BYTES",
    "RENEW_AT",
    "SECRET_HEADROOM",
    "IdentityAuthority",
    "TlsBundle",
    "entry_of",
    "fits",
    "identities_in",
    "identity_names",
    "issue_identity",
    "needs_issue",
    "new_identity_authority",
    "plan_authority",
    "secret_size",
    "trusted",
    "with_entry",
    "without_entries",
]

CA_SECRET: Final = "goq-identity-ca"
"""The identity CA's Secret, in the operator's namespace (``tls.crt``, ``tls.key``, ``ca.crt``)."""
CA_VALIDITY: Final = datetime.timedelta(days=3 * 365)
LIFETIME: Final = datetime.timedelta(days=7)
"""How long an identity certificate is valid; it is renewed after two thirds of it."""
RENEW_AT: Final = 2 / 3
MAX_SECRET_BYTES: Final = 1024 * 1024
"""Kubernetes refuses a Secret whose data (keys and values, decoded) exceed 1 MiB."""
SECRET_HEADROOM: Final = 16 * 1024
"""Kept free in ``goq-identity-tls``: the trust bundle grows to three CAs during a rotation, and a renewed
certificate may be a few bytes longer (a longer trust domain, a longer signature). An identity's entry
takes 1.0 KB (short names) to 2.0 KB (the longest identity and namespace, a 255-character trust domain):
a namespace holds at least 520 identities, about 1,000 with short names."""
END: Final = b"-----END CERTIFICATE-----"


def new_identity_authority(now: datetime.datetime, validity: datetime.timedelta = CA_VALIDITY) -> Authority:
    """An identity CA (made once, then at each rotation; its Secret keeps it)."""
    return new_authority("goq-identity-ca", now, validity)


def _due(cert: x509.Certificate, now: datetime.datetime) -> bool:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= start + (end - start) * RENEW_AT


def _split(pem: bytes) -> list[bytes]:
    """The PEM certificates of a bundle, each as its own bytes (unparseable ones dropped)."""
    found = []
    for part in pem.split(END):
        if b"-----BEGIN CERTIFICATE-----" in part:
            block = part[part.index(b"-----BEGIN CERTIFICATE-----") :] + END + b"\n"
            try:
                x509.load_pem_x509_certificate(block)
            except ValueError:
                continue
            found.append(block)
    return found


def trusted(bundle: bytes, now: datetime.datetime) -> list[x509.Certificate]:
    """The certificates of a trust bundle that are valid at ``now``."""
    certs = [x509.load_pem_x509_certificate(b) for b in _split(bundle)]
    return [c for c in certs if c.not_valid_before_utc <= now < c.not_valid_after_utc]


@dataclass(frozen=True)
class IdentityAuthority:
    """What the CA Secret holds: the CA that signs, its published successor (trusted, not yet signing), and
    the trust bundle every namespace's certificate Secret carries (``ca.crt``)."""

    signing: Authority
    bundle: bytes
    successor: Authority | None = None
    published: datetime.datetime | None = None
    """When ``successor`` entered the bundle: it signs once the bundle has reached every sidecar."""

    def to_secret_data(self) -> dict[str, bytes]:
        data = {"tls.crt": self.signing.cert, "tls.key": self.signing.key, "ca.crt": self.bundle}
        if self.successor is not None and self.published is not None:
            data |= {"next.crt": self.successor.cert, "next.key": self.successor.key}
            data["next.published"] = self.published.isoformat().encode()
        return data

    @classmethod
    def from_secret_data(cls, data: dict[str, bytes]) -> "IdentityAuthority | None":
        """Read it back; ``None`` when the signing CA is missing or does not load (the Secret is then made anew)."""
        cert, key = data.get("tls.crt"), data.get("tls.key")
        if not cert or not key or not _pair(cert, key):
            return None
        successor, published = None, None
        nxt, nxt_key, when = data.get("next.crt"), data.get("next.key"), data.get("next.published")
        if nxt and nxt_key and when and _pair(nxt, nxt_key):
            try:
                published = datetime.datetime.fromisoformat(when.decode())
                successor = Authority(nxt, nxt_key)
            except ValueError:
                successor, published = None, None
        return cls(Authority(cert, key), data.get("ca.crt") or cert, successor, published)


def _pair(cert_pem: bytes, key_pem: bytes) -> bool:
    """A certificate that loads, with its own private key."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return False
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(cert.public_key().public_bytes(*der) == key.public_key().public_bytes(*der))


def _bundle(certs: list[bytes], now: datetime.datetime) -> bytes:
    """The still-valid certificates of ``certs``, each once, in order."""
    kept: list[bytes] = []
    for pem in certs:
        cert = x509.load_pem_x509_certificate(pem)
        if cert.not_valid_before_utc <= now < cert.not_valid_after_utc and pem not in kept:
            kept.append(pem)
    return b"".join(kept)


def plan_authority(
    current: IdentityAuthority | None,
    now: datetime.datetime,
    *,
    validity: datetime.timedelta = CA_VALIDITY,
    propagation: datetime.timedelta,
) -> IdentityAuthority:
    """The CA Secret as it should be now: made when missing or expired; a successor published after two thirds
    of the signing CA's life; the successor signing once published for ``propagation``; expired CAs out of
    the bundle. Equal to ``current`` when nothing is due."""
    if current is None or not trusted(current.signing.cert, now):
        fresh = new_identity_authority(now, validity)
        return IdentityAuthority(fresh, fresh.cert)
    signing, successor, published = current.signing, current.successor, current.published
    old = _split(current.bundle)
    if successor is not None and published is not None and now - published >= propagation:
        signing, successor, published = successor, None, None
    elif successor is None and _due(x509.load_pem_x509_certificate(signing.cert), now):
        successor, published = new_identity_authority(now, validity), now
    wanted = [signing.cert, *([successor.cert] if successor else []), *old]
    planned = IdentityAuthority(signing, _bundle(wanted, now), successor, published)
    return current if planned == current else planned


def identity_names(address: Address, trust_domain: str, cluster_domain: str) -> list[x509.GeneralName]:
    """The SANs of ``address``'s certificate: its SPIFFE ID, then its Service's DNS names."""
    host = f"{service_name(address.identity)}.{address.namespace}.svc"
    return [
        x509.UniformResourceIdentifier(spiffe_id(trust_domain, address)),
        x509.DNSName(host),
        x509.DNSName(f"{host}.{cluster_domain}"),
    ]


def issue_identity(
    authority: Authority,
    address: Address,
    *,
    trust_domain: str,
    cluster_domain: str,
    now: datetime.datetime,
    lifetime: datetime.timedelta = LIFETIME,
    bundle: bytes | None = None,
) -> TlsBundle:
    """A certificate for ``address`` (namespaced), valid from a little before ``now`` (clock skew) for
    ``lifetime``, but never beyond its CA; ``bundle``: the trust bundle to ship with it (the CA alone)."""
    names = identity_names(address, trust_domain, cluster_domain)
    ca_end = x509.load_pem_x509_certificate(authority.cert).not_valid_after_utc
    cert, key = sign_leaf(
        authority,
        f"{address.identity}.{address.namespace}"[:64],  # X.509 allows 64; the SANs are what peers check
        names,
        not_before=now - backdate(lifetime),
        not_after=min(now + lifetime, ca_end),
    )
    return TlsBundle(ca=bundle or authority.cert, cert=cert, key=key)


def needs_issue(
    current: TlsBundle | None,
    authority: Authority,
    address: Address,
    *,
    trust_domain: str,
    cluster_domain: str,
    now: datetime.datetime,
    bundle: bytes | None = None,
) -> bool:
    """Whether to issue anew: missing, unreadable, not signed by ``authority`` (the CA rotated, or someone
    wrote a certificate of their own), its key not its own, naming other names, shipped with another trust
    bundle than ``bundle`` (the CA alone), or past two thirds of its lifetime."""
    if current is None or current.ca != (bundle or authority.cert) or not _pair(current.cert, current.key):
        return True
    try:
        cert = x509.load_pem_x509_certificate(current.cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(authority.cert))
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return True
    if list(sans) != identity_names(address, trust_domain, cluster_domain):
        return True
    return _due(cert, now) or now >= cert.not_valid_after_utc


def entry_of(data: Mapping[str, bytes], identity: str) -> TlsBundle | None:
    """An identity's certificate and key in the namespace Secret's ``data``, with the shared bundle; ``None``
    when either is missing."""
    cert, key = data.get(tls_cert_key(identity)), data.get(tls_key_key(identity))
    if not cert or not key:
        return None
    return TlsBundle(ca=data.get(TLS_BUNDLE_KEY, b""), cert=cert, key=key)


def with_entry(data: Mapping[str, bytes], identity: str, issued: TlsBundle) -> dict[str, bytes]:
    """``data`` with ``identity``'s certificate and key, and ``issued``'s bundle as the shared ``ca.crt``."""
    return {**data, tls_cert_key(identity): issued.cert, tls_key_key(identity): issued.key, TLS_BUNDLE_KEY: issued.ca}


def identities_in(data: Mapping[str, bytes]) -> set[str]:
    """The identities with a key (certificate or private key) in the namespace Secret's ``data``."""
    found = set()
    for key in data:
        for suffix in (tls_cert_key(""), tls_key_key("")):
            if key.endswith(suffix) and len(key) > len(suffix):
                found.add(key[: -len(suffix)])
    return found


def without_entries(data: Mapping[str, bytes], identities: Iterable[str]) -> dict[str, bytes]:
    """``data`` without the keys of ``identities``."""
    gone = {k for i in identities for k in (tls_cert_key(i), tls_key_key(i))}
    return {k: v for k, v in data.items() if k not in gone}


def secret_size(data: Mapping[str, bytes]) -> int:
    """What Kubernetes counts against ``MAX_SECRET_BYTES``: every key and every (decoded) value."""
    return sum(len(k) + len(v) for k, v in data.items())


def fits(data: Mapping[str, bytes]) -> bool:
    """Whether ``data`` leaves ``SECRET_HEADROOM`` below the Secret size limit (the test for a new identity)."""
    return secret_size(data) <= MAX_SECRET_BYTES - SECRET_HEADROOM
