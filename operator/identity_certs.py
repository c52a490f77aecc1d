"""The identity certificates of sidecars: what each identity's TLS Secret holds, and when it is renewed. Pure.

The operator is the identity authority: one CA, kept in a Secret of its namespace (``goq-identity-ca``),
signs for each GoQueue a certificate naming the identity, ``spiffe://<trust domain>/ns/<ns>/goq/<id>``
(URI SAN: what the receiving sidecar compares with an envelope's ``from``), and its Service,
``goq-<id>.<ns>.svc`` and ``goq-<id>.<ns>.svc.<cluster domain>`` (DNS SANs: what the sending sidecar
checks). The Secret ``goq-<id>-tls`` in the GoQueue's namespace holds it in the ``kubernetes.io/tls``
layout plus ``ca.crt``; the webhook mounts it into the sidecar (``GOQ_TLS_DIR``). A certificate is
renewed once two thirds of its lifetime have passed: the sidecars load the new one within seconds, and
the old one is still valid for a third of its lifetime.
"""

import datetime
from typing import Final

from cryptography import x509

from goq.identity import Address
from goq.names import service_name
from goq.operator.certificates import Authority, TlsBundle, new_authority, sign_leaf
from goq.spiffe import spiffe_id

CA_SECRET: Final = "goq-identity-ca"
"""The identity CA's Secret, in the operator's namespace (``tls.crt``, ``tls.key``)."""
CA_VALIDITY: Final = datetime.timedelta(days=3 * 365)
LIFETIME: Final = datetime.timedelta(days=7)
"""How long an identity certificate is valid; it is renewed after two thirds of it."""
RENEW_AT: Final = 2 / 3


def tls_secret_name(identity: str) -> str:
    """The Secret with an identity's certificate, in its namespace: ``goq-<id>-tls``."""
    return f"{service_name(identity)}-tls"


def new_identity_authority(now: datetime.datetime) -> Authority:
    """The identity CA (made once; its Secret keeps it)."""
    return new_authority("goq-identity-ca", now, CA_VALIDITY)


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
) -> TlsBundle:
    """A certificate for ``address`` (namespaced), valid from a few minutes ago (clock skew) for ``lifetime``."""
    names = identity_names(address, trust_domain, cluster_domain)
    cert, key = sign_leaf(
        authority,
        f"{address.identity}.{address.namespace}",
        names,
        not_before=now - datetime.timedelta(minutes=5),
        not_after=now + lifetime,
    )
    return TlsBundle(ca=authority.cert, cert=cert, key=key)


def needs_issue(
    current: TlsBundle | None,
    authority: Authority,
    address: Address,
    *,
    trust_domain: str,
    cluster_domain: str,
    now: datetime.datetime,
) -> bool:
    """Whether to issue anew: missing, unreadable, past two thirds of its lifetime, naming other names, or
    not from ``authority`` (the CA was replaced)."""
    if current is None or current.ca != authority.cert:
        return True
    try:
        cert = x509.load_pem_x509_certificate(current.cert)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return True
    if cert.issuer != x509.load_pem_x509_certificate(authority.cert).subject:
        return True
    if list(sans) != identity_names(address, trust_domain, cluster_domain):
        return True
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= start + (end - start) * RENEW_AT
