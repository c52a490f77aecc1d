"""The identity authority at work: the CA Secret in the operator's namespace and each namespace's TLS Secret.

What to write is decided by the pure rules of ``goq.operator.identity_certs``; this module reads and writes
the Secrets. The CA Secret (``GOQ_TLS_CA_SECRET``, ``goq-identity-ca``) is made once and rotated by the
sweep. Each namespace with GoQueues has one Secret ``goq-identity-tls`` holding every identity's certificate
and key under keys of its own, and the shared trust bundle: a fixed name, so that the operator's RBAC can
name it (per-identity names could not be listed ahead, and would have needed the right to read every
Secret of the cluster). An identity's entry is made when missing, renewed when due, and written anew when
it was changed by hand or holds a certificate the CA did not sign for that identity; the sweep removes the
entries of identities whose GoQueue is gone (the Secret itself stays, with the trust bundle). Several
writers (the sweep, the kopf handlers, another operator run) share the Secret: every write is a replace
guarded by resourceVersion, redone from a fresh read on a conflict, so no identity's update is lost. A
Secret of that name without GoQ's labels was made by someone else and is never overwritten: the GoQueue's
condition ``Certificate`` says so, as it says why the operator could not write (not allowed, Secret full).
Key material never reaches a log line, an Event or a condition.
"""

import asyncio
import base64
import datetime
import functools
import json
import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.errors import TemporaryError
from goq.identity import Address
from goq.operator.certificates import TlsBundle
from goq.operator.conditions import Condition
from goq.operator.events import post_event
from goq.operator.identity_certs import (
    MAX_SECRET_BYTES,
    IdentityAuthority,
    entry_of,
    fits,
    identities_in,
    issue_identity,
    needs_issue,
    plan_authority,
    trusted,
    with_entry,
    without_entries,
)
from goq.operator.keys import MANAGED_LABELS
from goq.operator.kube import body, call, get_goqueue, get_or_none, status_of, translate
from goq.operator.settings import OperatorSettings, TlsSettings
from goq.spiffe import spiffe_id

log = logging.getLogger("goq.operator")
CONDITION: Final = "Certificate"
SECRET: Final = names.IDENTITY_TLS_SECRET
ATTEMPTS: Final = 5
"""Read-change-write rounds before a Secret that keeps changing is left to the next reconcile."""
LIST_PAGE: Final = 10
"""Secrets per page when the sweep lists every ``goq-identity-tls`` (each may hold up to 1 MiB)."""
CONFLICT_PAUSE: Final = 0.05
"""Seconds, at most, of random pause after a conflict before reading the Secret again."""


def _decode(secret: Any) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _encode(data: Mapping[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}


def _managed(secret: Any) -> bool:
    labels = secret.metadata.labels or {}
    return bool(labels.get("app.kubernetes.io/managed-by") == MANAGED_LABELS["app.kubernetes.io/managed-by"])


async def ensure_authority(
    api: k8s.ApiClient, settings: OperatorSettings, now: datetime.datetime | None = None
) -> IdentityAuthority:
    """The identity CA from its Secret: made when missing (or unreadable, or expired), rotated when due.

    Two operator replicas may both find it missing (or due): one write wins, the other's AlreadyExists or
    Conflict reads the Secret again and uses the winner's CA."""
    for attempt in range(ATTEMPTS):
        try:
            return await _ensure_authority_once(api, settings, now)
        except TemporaryError as exc:
            if attempt + 1 == ATTEMPTS or status_of(exc) != 409:
                raise
            await asyncio.sleep(random.uniform(0, CONFLICT_PAUSE))
    raise AssertionError("unreachable")


async def _ensure_authority_once(
    api: k8s.ApiClient, settings: OperatorSettings, now: datetime.datetime | None
) -> IdentityAuthority:
    core = k8s.CoreV1Api(api)
    ns, name = settings.namespace, settings.tls.ca_secret
    now = now or datetime.datetime.now(datetime.UTC)
    secret = await get_or_none(f"reading Secret {ns}/{name}", core.read_namespaced_secret(name, ns))
    current = IdentityAuthority.from_secret_data(_decode(secret)) if secret is not None else None
    wanted = plan_authority(
        current,
        now,
        validity=datetime.timedelta(seconds=settings.tls.ca_lifetime),
        propagation=datetime.timedelta(seconds=settings.tls.propagation),
    )
    if wanted is current:
        assert current is not None
        return current
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": dict(MANAGED_LABELS)}
    data = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque"}
    data["data"] = _encode(wanted.to_secret_data())
    try:
        if secret is None:
            await core.create_namespaced_secret(ns, body(data))
        else:
            meta["resourceVersion"] = secret.metadata.resource_version
            await core.replace_namespaced_secret(name, ns, body(data))
    except ApiException as exc:
        if exc.status == 409:  # another operator run wrote it first: its CA stands, read it next time
            raise TemporaryError(f"the identity CA {ns}/{name} changed meanwhile; reading it again", delay=0.5) from exc
        raise translate(f"writing the identity CA {ns}/{name}", exc) from exc
    log.info("identity CA %s/%s: %s", ns, name, _what_changed(current, wanted))
    return wanted


def _what_changed(old: IdentityAuthority | None, new: IdentityAuthority) -> str:
    if old is None:
        return "made (it signs every identity's certificate)"
    if old.signing != new.signing and old.successor == new.signing:
        return "its successor signs from now on; the old CA stays trusted until it expires"
    if old.signing != new.signing:
        return "made anew (the one kept was expired or did not load)"
    if new.successor is not None and old.successor is None:
        return "a successor is trusted from now on and signs once every sidecar trusts it"
    return "expired CAs left the trust bundle"


@dataclass(frozen=True)
class Issuer:
    """Everything needed to write identity certificates: the CA as the sweep found it, and the TLS settings."""

    authority: IdentityAuthority
    settings: TlsSettings


def _explain(exc: ApiException) -> str:
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or f"{exc.status} {exc.reason}")


def _refused(exc: ApiException) -> bool:
    """Forbidden by RBAC (or an admission policy), as opposed to a namespace being deleted."""
    return exc.status == 403 and "being terminated" not in str(exc.body)


def _secret_body(ns: str, data: Mapping[str, bytes], resource_version: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": SECRET, "namespace": ns, "labels": dict(MANAGED_LABELS)}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "data": _encode(data)}


@dataclass
class SecretView:
    """A namespace's ``goq-identity-tls`` as this operator last read or wrote it: a sweep reads it once for
    all the GoQueues of the namespace (it may hold up to 1 MiB) instead of once each. A stale copy is safe:
    every write is guarded by its resourceVersion, and a conflict reads the Secret again."""

    secret: Any = None
    known: bool = False


async def _write(core: k8s.CoreV1Api, ns: str, secret: Any, data: Mapping[str, bytes]) -> Any:
    """Create the Secret, or replace the version that was read; the Secret written, or ``None`` on a conflict
    (someone wrote first: read again and redo the change)."""
    try:
        if secret is None:
            return await core.create_namespaced_secret(ns, body(_secret_body(ns, data, None)))
        version = secret.metadata.resource_version
        return await core.replace_namespaced_secret(SECRET, ns, body(_secret_body(ns, data, version)))
    except ApiException as exc:
        if exc.status == 409:  # AlreadyExists on create, Conflict on replace
            return None
        raise


def _valid_until(issued: TlsBundle) -> str:
    end = x509.load_pem_x509_certificate(issued.cert).not_valid_after_utc
    return end.isoformat(timespec="seconds")


async def ensure_identity(
    api: k8s.ApiClient,
    goqueue: Mapping[str, Any],
    issuer: Issuer,
    now: datetime.datetime | None = None,
    view: SecretView | None = None,
) -> Condition:
    """The GoQueue's entry of its namespace's TLS Secret in line (made, renewed or repaired, with the current
    trust bundle); the condition ``Certificate`` says how it stands. What the operator may not do is that
    condition; other API failures (the API server busy, the namespace going away) are raised as they are,
    for the reconcile to translate; a Secret that changed under every attempt is a TemporaryError.
    ``view``: the Secret as the sweep knows it (kept up to date here); ``None``: read it."""
    meta = goqueue["metadata"]
    identity, ns = meta["name"], meta["namespace"]
    where = f"Secret {ns}/{SECRET}"
    core = k8s.CoreV1Api(api)
    view = view if view is not None else SecretView()
    for _ in range(ATTEMPTS):
        if not view.known:
            try:
                view.secret = await core.read_namespaced_secret(SECRET, ns)
            except ApiException as exc:
                if _refused(exc):
                    return Condition(
                        CONDITION, False, "CertificateNotIssued", f"the operator may not read {where}: {_explain(exc)}"
                    )
                if exc.status != 404:
                    raise  # the reconcile translates it (and lets a namespace being deleted go quietly)
                view.secret = None
            view.known = True
        secret = view.secret
        if secret is not None and not _managed(secret):
            return Condition(
                CONDITION,
                False,
                "CertificateNotManaged",
                f"{where} was not made by GoQ (no label app.kubernetes.io/managed-by=goq-operator) and is left as "
                "it is; the sidecars of this namespace mount it: delete it to let the operator issue the "
                "certificates of its identities",
            )
        try:
            done = await _ensure_entry(core, goqueue, issuer, view, now or datetime.datetime.now(datetime.UTC))
        except ApiException as exc:
            if _refused(exc):
                return Condition(
                    CONDITION, False, "CertificateNotIssued", f"the operator may not write {where}: {_explain(exc)}"
                )
            if exc.status == 422:  # refused as invalid: too large (a renewal that outgrew the headroom)
                return Condition(CONDITION, False, "CertificateNotIssued", f"{where} was refused: {_explain(exc)}")
            raise
        if done is None:
            log.debug("%s changed while the certificate of %s was written; reading it again", where, identity)
            view.known = False
            await asyncio.sleep(random.uniform(0, CONFLICT_PAUSE))  # writers that collided spread out
            continue
        if isinstance(done, Condition):
            return done
        return await _issued(api, goqueue, issuer, *done)
    raise TemporaryError(f"{where} changed under every write of the certificate of {identity}; trying again", delay=1.0)


async def _ensure_entry(
    core: k8s.CoreV1Api, goqueue: Mapping[str, Any], issuer: Issuer, view: SecretView, now: datetime.datetime
) -> Condition | tuple[TlsBundle | None, TlsBundle] | None:
    """One change-and-write round on the Secret as ``view`` has it: ``None`` on a conflict; a Condition when
    the identity does not fit; else (the entry found, the entry in force)."""
    secret = view.secret
    meta = goqueue["metadata"]
    identity, ns = meta["name"], meta["namespace"]
    tls, authority = issuer.settings, issuer.authority
    data = _decode(secret) if secret is not None else {}
    current = entry_of(data, identity)
    found = TlsBundle(ca=authority.bundle, cert=current.cert, key=current.key) if current is not None else None
    names_kw = {"trust_domain": tls.trust_domain, "cluster_domain": tls.cluster_domain}
    address = Address(identity, ns)
    if needs_issue(found, authority.signing, address, now=now, bundle=authority.bundle, **names_kw):
        wanted = issue_identity(
            authority.signing,
            address,
            now=now,
            lifetime=datetime.timedelta(seconds=tls.lifetime),
            bundle=authority.bundle,
            **names_kw,
        )
    else:
        assert found is not None
        if current is not None and current.ca == authority.bundle:
            return current, current  # nothing to write
        wanted = found  # only the trust bundle changed (a CA published, or one expired)
    written = with_entry(data, identity, wanted)
    if current is None and not fits(written):
        held = len(identities_in(data))
        return Condition(
            CONDITION,
            False,
            "CertificateSecretFull",
            f"Secret {ns}/{SECRET} holds the certificates of {held} identities and has no room for this one "
            f"(a Secret holds at most {MAX_SECRET_BYTES // 2**20} MiB): move identities to another namespace",
        )
    view.secret = await _write(core, ns, secret, written)
    if view.secret is None:
        return None
    return current, wanted


async def _issued(
    api: k8s.ApiClient, goqueue: Mapping[str, Any], issuer: Issuer, current: TlsBundle | None, wanted: TlsBundle
) -> Condition:
    """Log (and for a new or repaired entry, tell on the GoQueue) what was written; the condition."""
    meta = goqueue["metadata"]
    address = Address(meta["name"], meta["namespace"])
    where = f"Secret {address.namespace}/{SECRET}"
    tls = issuer.settings
    if current is not None and current.cert == wanted.cert:
        if current.ca != wanted.ca:
            log.info("%s: trust bundle brought in line with the identity CA", where)
        return _issued_condition(address, tls)
    how = "issued" if current is None else "renewed" if _from(current, issuer.authority.bundle) else "replaced"
    until = _valid_until(wanted)
    log.info("%s: certificate %s for %s, valid until %s", where, how, spiffe_id(tls.trust_domain, address), until)
    if how != "renewed":  # a renewal is routine; a new or repaired entry is worth a line in `kubectl describe`
        text = f"{where}: certificate of {address.identity} issued, valid until {until}"
        if how == "replaced":
            text = f"{where} held no certificate of this identity from the GoQ CA (changed by hand?): {text}"
        await post_event(api, goqueue, "Normal", "CertificateIssued", text)
    return _issued_condition(address, tls)


def _from(current: TlsBundle, bundle: bytes) -> bool:
    """Whether ``current`` is a certificate one of the trusted CAs issued (writing a new one is a renewal)."""
    try:
        cert = x509.load_pem_x509_certificate(current.cert)
    except ValueError:
        return False
    for ca in trusted(bundle, datetime.datetime.now(datetime.UTC)):
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


def _issued_condition(address: Address, tls: TlsSettings) -> Condition:
    host = f"{names.service_name(address.identity)}.{address.namespace}.svc"
    return Condition(
        CONDITION,
        True,
        "CertificateIssued",
        f"Secret {SECRET} holds the certificate of {spiffe_id(tls.trust_domain, address)} and {host} "
        f"({names.tls_cert_key(address.identity)}, {names.tls_key_key(address.identity)}), renewed before it "
        "expires",
    )


async def remove_deleted(api: k8s.ApiClient, goqueues: Iterable[Mapping[str, Any]]) -> list[str]:
    """Remove from every namespace's TLS Secret the entries of identities without a GoQueue (``goqueues``: all
    of the cluster, as a sweep listed them; one being deleted counts as gone); return ``ns/id`` of each removed.

    Finds the Secrets with one list by name (the RBAC allows ``list`` only with ``metadata.name`` as field
    selector), and reads an identity's GoQueue again before removing its entry: one made since the listing
    keeps its certificate. The Secret stays, with the trust bundle (nothing secret) and the other entries."""
    live = {
        (g["metadata"]["namespace"], g["metadata"]["name"])
        for g in goqueues
        if not g["metadata"].get("deletionTimestamp")
    }
    core = k8s.CoreV1Api(api)
    removed: list[str] = []
    listing = functools.partial(
        core.list_secret_for_all_namespaces,
        field_selector=f"metadata.name={SECRET}",
        label_selector=",".join(f"{k}={v}" for k, v in MANAGED_LABELS.items()),
        limit=LIST_PAGE,
    )
    token: str | None = None
    while True:
        page = await call(f"listing the Secrets {SECRET}", listing(_continue=token) if token else listing())
        for secret in page.items:
            ns = secret.metadata.namespace
            stale = {i for i in identities_in(_decode(secret)) if (ns, i) not in live}
            if stale:
                removed += [f"{ns}/{i}" for i in sorted(await _remove(api, ns, stale, secret))]
        token = page.metadata._continue
        if not token:
            return removed


async def _remove(api: k8s.ApiClient, ns: str, candidates: set[str], secret: Any) -> set[str]:
    """Remove the entries of those ``candidates`` whose GoQueue is really gone; on a conflict read again."""
    gone: set[str] = set()
    for identity in candidates:
        found = await get_goqueue(api, ns, identity)
        if found is None or found["metadata"].get("deletionTimestamp"):
            gone.add(identity)
    core = k8s.CoreV1Api(api)
    where = f"Secret {ns}/{SECRET}"
    for _ in range(ATTEMPTS):
        if secret is None or not _managed(secret):
            return set()
        data = _decode(secret)
        present = gone & identities_in(data)
        if not present:
            return set()
        try:
            if await _write(core, ns, secret, without_entries(data, present)) is not None:
                log.info("%s: certificates of %s removed (their GoQueues are gone)", where, ", ".join(sorted(present)))
                return present
        except ApiException as exc:
            raise translate(f"removing certificates from {where}", exc) from exc
        secret = await get_or_none(f"reading {where}", core.read_namespaced_secret(SECRET, ns))
    raise TemporaryError(f"{where} changed under every removal of {', '.join(sorted(gone))}; trying again", delay=1.0)
