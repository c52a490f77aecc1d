"""The identity CA's rotation (published first, signing later, the old one trusted until it expires), the
repair of tampered certificates, and the TLS settings. Pure: fake time, no server."""

import datetime

import pytest
from cryptography import x509

from goq.errors import ConfigError
from goq.identity import Address
from goq.operator.certificates import TlsBundle
from goq.operator.identity_certs import (
    MAX_SECRET_BYTES,
    IdentityAuthority,
    entry_of,
    fits,
    identities_in,
    issue_identity,
    needs_issue,
    plan_authority,
    secret_size,
    trusted,
    with_entry,
    without_entries,
)
from goq.operator.settings import OperatorSettings
from goq.operator.x509_issuing import new_authority

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
MINUTE = datetime.timedelta(minutes=1)
ORDERS = Address("orders", "shop")
NAMES = {"trust_domain": "example.org", "cluster_domain": "cluster.local"}


def subjects(bundle: bytes, now: datetime.datetime) -> list[bytes]:
    return [c.fingerprint(c.signature_hash_algorithm) for c in trusted(bundle, now)]  # type: ignore[arg-type]


def fingerprint(pem: bytes) -> bytes:
    cert = x509.load_pem_x509_certificate(pem)
    return cert.fingerprint(cert.signature_hash_algorithm)  # type: ignore[arg-type]


def test_a_ca_is_published_before_it_signs_and_the_old_one_stays_trusted_until_it_expires() -> None:
    plan = {"validity": 30 * DAY, "propagation": 10 * MINUTE}
    first = plan_authority(None, T0, **plan)
    assert plan_authority(first, T0 + 10 * DAY, **plan) is first  # nothing due: the very same object

    published = plan_authority(first, T0 + 20 * DAY, **plan)  # two thirds of its life
    assert published.signing == first.signing, "the successor must not sign before every sidecar trusts it"
    assert published.successor is not None
    assert subjects(published.bundle, T0 + 20 * DAY) == [
        fingerprint(first.signing.cert),
        fingerprint(published.successor.cert),
    ]
    assert plan_authority(published, T0 + 20 * DAY + 9 * MINUTE, **plan) is published

    signing = plan_authority(published, T0 + 20 * DAY + 10 * MINUTE, **plan)
    assert signing.signing == published.successor
    assert signing.successor is None
    assert fingerprint(first.signing.cert) in subjects(signing.bundle, T0 + 21 * DAY), "old CA dropped too early"

    expired = plan_authority(signing, T0 + 31 * DAY, **plan)
    assert subjects(expired.bundle, T0 + 31 * DAY) == [fingerprint(signing.signing.cert)]


def test_the_ca_secret_reads_back_what_was_written_and_a_broken_one_is_made_anew() -> None:
    plan = {"validity": 30 * DAY, "propagation": 10 * MINUTE}
    published = plan_authority(plan_authority(None, T0, **plan), T0 + 20 * DAY, **plan)
    assert IdentityAuthority.from_secret_data(published.to_secret_data()) == published
    other = new_authority("x", T0, DAY)
    broken = published.to_secret_data() | {"tls.key": other.key}
    assert IdentityAuthority.from_secret_data(broken) is None
    assert plan_authority(None, T0, **plan).signing != published.signing


def test_a_certificate_never_outlives_its_ca() -> None:
    ca = plan_authority(None, T0, validity=3 * DAY, propagation=MINUTE)
    issued = issue_identity(ca.signing, ORDERS, now=T0 + 2 * DAY, lifetime=7 * DAY, **NAMES)
    end = x509.load_pem_x509_certificate(issued.cert).not_valid_after_utc
    assert end == x509.load_pem_x509_certificate(ca.signing.cert).not_valid_after_utc


def test_a_short_lived_certificate_is_not_due_for_renewal_as_soon_as_it_is_issued() -> None:
    ca = plan_authority(None, T0, validity=DAY, propagation=MINUTE)
    issued = issue_identity(ca.signing, ORDERS, now=T0, lifetime=datetime.timedelta(seconds=60), **NAMES)
    seconds = datetime.timedelta(seconds=1)
    assert not needs_issue(issued, ca.signing, ORDERS, now=T0 + 30 * seconds, **NAMES)
    assert needs_issue(issued, ca.signing, ORDERS, now=T0 + 40 * seconds, **NAMES)


def test_a_tampered_certificate_is_issued_anew() -> None:
    ca = plan_authority(None, T0, validity=30 * DAY, propagation=MINUTE)
    issued = issue_identity(ca.signing, ORDERS, now=T0, lifetime=DAY, bundle=ca.bundle, **NAMES)
    check = {"now": T0 + MINUTE, "bundle": ca.bundle, **NAMES}
    assert not needs_issue(issued, ca.signing, ORDERS, **check)
    # Signed by a CA of the same name but another key: the issuer name matches, the signature does not.
    impostor = new_authority("goq-identity-ca", T0, 30 * DAY)
    forged = issue_identity(impostor, ORDERS, now=T0, lifetime=DAY, bundle=ca.bundle, **NAMES)
    assert needs_issue(forged, ca.signing, ORDERS, **check)
    other = issue_identity(ca.signing, ORDERS, now=T0, lifetime=DAY, bundle=ca.bundle, **NAMES)
    assert needs_issue(TlsBundle(ca.bundle, issued.cert, other.key), ca.signing, ORDERS, **check)
    assert needs_issue(TlsBundle(b"not a bundle", issued.cert, issued.key), ca.signing, ORDERS, **check)


def test_the_namespace_secret_keeps_each_identity_under_its_own_keys_beside_one_shared_bundle() -> None:
    ca = plan_authority(None, T0, validity=30 * DAY, propagation=MINUTE)
    issued = {
        name: issue_identity(ca.signing, Address(name, "shop"), now=T0, lifetime=DAY, bundle=ca.bundle, **NAMES)
        for name in ("orders", "ca", "billing")  # an identity named "ca" must not clash with the bundle
    }
    data: dict[str, bytes] = {}
    for name, bundle in issued.items():
        data = with_entry(data, name, bundle)
    assert set(data) == {"ca.crt"} | {f"{n}.tls.{ext}" for n in issued for ext in ("crt", "key")}
    assert identities_in(data) == {"orders", "ca", "billing"}
    assert all(entry_of(data, name) == bundle for name, bundle in issued.items())
    rest = without_entries(data, ["orders"])
    assert identities_in(rest) == {"ca", "billing"}
    assert entry_of(rest, "orders") is None
    assert entry_of(rest, "billing") == issued["billing"], "removing one identity leaves the others as they were"


def test_a_namespace_holds_at_least_520_identities_of_the_longest_names_and_refuses_one_beyond() -> None:
    ca = plan_authority(None, T0, validity=30 * DAY, propagation=MINUTE)
    longest = {"trust_domain": "t" * 255, "cluster_domain": "cluster.local"}
    identity, ns = "i" * 59, "n" * 63  # an identity is at most 59 characters, a namespace 63
    worst = max(
        (issue_identity(ca.signing, Address(identity, ns), now=T0, bundle=ca.bundle, **longest) for _ in range(20)),
        key=lambda b: len(b.cert) + len(b.key),
    )
    data: dict[str, bytes] = {}
    held = 0
    while fits(candidate := with_entry(data, f"{identity[:-4]}{held:04d}", worst)):
        data, held = candidate, held + 1
    assert held >= 520, f"only {held} identities fit"
    # The headroom kept takes a CA rotation (three CAs in the bundle) and renewals a little longer.
    rotating = {**data, "ca.crt": ca.bundle * 3, f"{identity[:-4]}0000.tls.crt": worst.cert + b"x" * 64}
    assert secret_size(rotating) <= MAX_SECRET_BYTES


def test_the_longest_identity_and_namespace_get_a_certificate_naming_them_in_full() -> None:
    ca = new_authority("goq-identity-ca", T0, 30 * DAY)
    address = Address("i" * 59, "n" * 63)
    issued = issue_identity(ca, address, now=T0, lifetime=DAY, **NAMES)
    sans = x509.load_pem_x509_certificate(issued.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://example.org/ns/{'n' * 63}/goq/{'i' * 59}"
    ]


def test_peer_tls_is_on_by_default_and_lifetimes_are_settings() -> None:
    default = OperatorSettings.from_env({})
    assert default.tls.enabled
    assert (default.tls.lifetime, default.tls.trust_domain) == (7 * 86400.0, "cluster.local")
    short = OperatorSettings.from_env(
        {"GOQ_TLS_CERT_LIFETIME": "30s", "GOQ_TLS_PROPAGATION": "5s", "GOQ_TLS_CA_LIFETIME": "5m"}
    )
    assert (short.tls.lifetime, short.tls.propagation, short.tls.ca_lifetime) == (30.0, 5.0, 300.0)
    assert not OperatorSettings.from_env({"GOQ_PEER_TLS": "false"}).tls.enabled


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"GOQ_PEER_TLS": "maybe"}, "GOQ_PEER_TLS must be true or false"),
        ({"GOQ_TLS_CERT_LIFETIME": "60s", "GOQ_TLS_PROPAGATION": "30s"}, "over three times GOQ_TLS_PROPAGATION"),
        ({"GOQ_TLS_CA_LIFETIME": "240h"}, "at least three times GOQ_TLS_CERT_LIFETIME"),
    ],
)
def test_tls_settings_that_would_refuse_peers_during_a_renewal_are_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        OperatorSettings.from_env(env)
