"""The operator as identity authority on the real kube-apiserver: the CA Secret, each namespace's Secret
``goq-identity-tls`` with every identity's certificate under its own keys, renewal near expiry, a deleted or
tampered entry written anew, no update lost when many identities are written at once, entries removed with
their GoQueue, a full Secret refused clearly, the CA rotated with an overlap, and the webhook mounting only
the pod's identity's keys.

A real operator process running as its ServiceAccount with exactly the RBAC of manifests/rbac/operator.yaml,
with short lifetimes (a certificate lives 30 s, the CA 2 min) so that renewals happen during the test. That
RBAC names every Secret the operator may read: a get of any other Secret as its ServiceAccount is forbidden.
"""

import asyncio
import base64
import contextlib
import datetime
import functools
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from goq.operator.identity_certs import trusted
from goq.webhook.settings import TLS_MOUNT_PATH, TLS_VOLUME

from .operator_kube import (
    OperatorProcess,
    apply_crds,
    apply_rbac,
    eventually,
    namespace,
    operator_namespace,
    operator_process,
    simple_pod,
)

GROUP, VERSION = "goq.io", "v1alpha1"
SECRET = "goq-identity-tls"
LIFETIME = 30.0
CA_LIFETIME = 120.0
ENV = {
    "GOQ_TLS_CERT_LIFETIME": f"{LIFETIME:g}s",
    "GOQ_TLS_CA_LIFETIME": f"{CA_LIFETIME:g}s",
    "GOQ_TLS_PROPAGATION": "3s",
    "GOQ_TRUST_DOMAIN": "example.org",
}


@pytest.fixture(scope="module")
async def account(kube_api: k8s.ApiClient, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, Path]]:
    """The operator's namespace and a kubeconfig as its ServiceAccount (RBAC of manifests/rbac/operator.yaml)."""
    await apply_crds(kube_api)
    async with operator_namespace(kube_api, tmp_path_factory.mktemp("identity-tls")) as found:
        yield found


@pytest.fixture(scope="module")
async def operator(
    kube_api: k8s.ApiClient, account: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[OperatorProcess]:
    ns, kubeconfig = account
    async with operator_process(
        kube_api, ns, kubeconfig, tmp_path_factory.mktemp("identity-tls-run"), extra_env=ENV
    ) as handle:
        yield handle


@pytest.fixture
async def as_operator(account: tuple[str, Path]) -> AsyncIterator[k8s.ApiClient]:
    """An API client authenticated as the operator's ServiceAccount."""
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(account[1]), client_configuration=configuration)
    async with k8s.ApiClient(configuration) as api:
        yield api


@pytest.fixture(scope="module", autouse=True)
async def sidecar_role(kube_api: k8s.ApiClient) -> None:
    await apply_rbac(kube_api, "sidecar.yaml")


@pytest.fixture
async def ns(kube_api: k8s.ApiClient, operator: OperatorProcess) -> AsyncIterator[str]:
    async with namespace(kube_api, "tls") as name:
        yield name


async def create_goqueue(api: k8s.ApiClient, ns: str, name: str) -> dict[str, Any]:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": name}, "spec": {}}
    created: dict[str, Any] = await k8s.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, "goqueues", body
    )
    return created


async def tls_secret(api: k8s.ApiClient, ns: str) -> k8s.V1Secret | None:
    with contextlib.suppress(ApiException):
        return await k8s.CoreV1Api(api).read_namespaced_secret(SECRET, ns)
    return None


def data(secret: k8s.V1Secret) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def entry(secret: k8s.V1Secret | None, identity: str) -> dict[str, bytes] | None:
    """An identity's files as the webhook mounts them (``tls.crt``, ``tls.key``, ``ca.crt``), or ``None``."""
    found = data(secret) if secret is not None else {}
    if f"{identity}.tls.crt" not in found or f"{identity}.tls.key" not in found:
        return None
    return {"tls.crt": found[f"{identity}.tls.crt"], "tls.key": found[f"{identity}.tls.key"], "ca.crt": found["ca.crt"]}


def leaf(files: dict[str, bytes]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(files["tls.crt"])


def uris(cert: x509.Certificate) -> list[str]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(sans.get_values_for_type(x509.UniformResourceIdentifier))


async def ca_secret(api: k8s.ApiClient, operator: OperatorProcess) -> dict[str, bytes]:
    found = await k8s.CoreV1Api(api).read_namespaced_secret("goq-identity-ca", operator.namespace)
    return data(found)


def verifies(cert: x509.Certificate, bundle: bytes) -> bool:
    now = datetime.datetime.now(datetime.UTC)
    for ca in trusted(bundle, now):
        with contextlib.suppress(Exception):
            cert.verify_directly_issued_by(ca)
            return True
    return False


async def issued(api: k8s.ApiClient, ns: str, identity: str, within: float = 30.0) -> dict[str, bytes]:
    async def found() -> dict[str, bytes] | None:
        return entry(await tls_secret(api, ns), identity)

    files = await eventually(found, within=within)
    assert files is not None, f"no certificate of {identity} in Secret {ns}/{SECRET}"
    return files


async def condition_of(api: k8s.ApiClient, ns: str, identity: str, status: str) -> dict[str, Any] | None:
    found = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", identity)
    conditions = (found.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Certificate" and c["status"] == status), None)


async def test_each_identity_gets_its_keys_in_the_namespace_secret_naming_its_spiffe_id_signed_by_the_ca(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    await create_goqueue(kube_api, ns, "orders")
    await create_goqueue(kube_api, ns, "billing")
    orders = await issued(kube_api, ns, "orders")
    await issued(kube_api, ns, "billing")
    secret = await tls_secret(kube_api, ns)
    assert secret is not None
    assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "goq-operator"
    assert not secret.metadata.owner_references, "one Secret serves every identity: no GoQueue owns it"
    assert set(data(secret)) == {"ca.crt", "orders.tls.crt", "orders.tls.key", "billing.tls.crt", "billing.tls.key"}
    cert = leaf(orders)
    assert uris(cert) == [f"spiffe://example.org/ns/{ns}/goq/orders"]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [f"goq-orders.{ns}.svc", f"goq-orders.{ns}.svc.cluster.local"]
    ca = await ca_secret(kube_api, operator)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca["tls.crt"]))
    assert orders["ca.crt"] == ca["ca.crt"], "the identity Secret carries the CA's trust bundle"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime <= datetime.timedelta(seconds=LIFETIME * 1.2)
    condition = await eventually(lambda: condition_of(kube_api, ns, "orders", "True"))
    assert condition is not None, f"no condition Certificate=True; operator log:\n{operator.log()}"
    assert "orders.tls.crt" in condition["message"]


async def test_the_operator_may_read_no_other_secret_of_an_app_namespace(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str, as_operator: k8s.ApiClient
) -> None:
    core, mine = k8s.CoreV1Api(kube_api), k8s.CoreV1Api(as_operator)
    await core.create_namespaced_secret(ns, {"metadata": {"name": "app-db-password"}, "data": {"p": "c2VjcmV0"}})
    await create_goqueue(kube_api, ns, "orders")
    await issued(kube_api, ns, "orders")
    assert (await mine.read_namespaced_secret(SECRET, ns)).metadata.name == SECRET
    with pytest.raises(ApiException) as refused:
        await mine.read_namespaced_secret("app-db-password", ns)
    assert refused.value.status == 403, "the operator could read a Secret it does not manage"
    with pytest.raises(ApiException) as overwrite:
        await mine.replace_namespaced_secret("app-db-password", ns, {"metadata": {"name": "app-db-password"}})
    assert overwrite.value.status == 403, "the operator could overwrite a Secret it does not manage"
    with pytest.raises(ApiException) as listing:
        await mine.list_namespaced_secret(ns)
    assert listing.value.status == 403, "the operator could list every Secret"
    found = await mine.list_secret_for_all_namespaces(field_selector=f"metadata.name={SECRET}")
    assert ns in {s.metadata.namespace for s in found.items}, "listing by its own Secret's name is allowed"


async def test_a_certificate_is_renewed_before_it_expires_while_the_old_one_is_still_valid(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    await create_goqueue(kube_api, ns, "orders")
    first = leaf(await issued(kube_api, ns, "orders"))

    async def renewed() -> x509.Certificate | None:
        files = entry(await tls_secret(kube_api, ns), "orders")
        cert = leaf(files) if files is not None else None
        return cert if cert is not None and cert.serial_number != first.serial_number else None

    second = await eventually(renewed, within=LIFETIME)
    assert second is not None, f"not renewed within its lifetime; operator log:\n{operator.log()}"
    now = datetime.datetime.now(datetime.UTC)
    assert now < first.not_valid_after_utc, "renewed only after the old certificate expired"
    start, end = first.not_valid_before_utc, first.not_valid_after_utc
    assert now >= start + (end - start) * 0.6, "renewed far earlier than two thirds of its life"
    assert first.public_key() != second.public_key(), "a renewal makes a new key"


async def test_a_deleted_secret_or_a_tampered_entry_is_written_anew(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    core = k8s.CoreV1Api(kube_api)
    await create_goqueue(kube_api, ns, "billing")
    await create_goqueue(kube_api, ns, "orders")
    first = leaf(await issued(kube_api, ns, "billing"))
    await issued(kube_api, ns, "orders")
    await core.delete_namespaced_secret(SECRET, ns)
    assert leaf(await issued(kube_api, ns, "billing")).serial_number != first.serial_number
    orders = await issued(kube_api, ns, "orders")

    # Someone puts the certificate of another identity into billing's keys (same CA: it verifies, names differ).
    forged = {"billing.tls.crt": orders["tls.crt"], "billing.tls.key": orders["tls.key"]}
    await core.patch_namespaced_secret(
        SECRET, ns, {"data": {k: base64.b64encode(v).decode() for k, v in forged.items()}}
    )

    async def repaired() -> x509.Certificate | None:
        files = entry(await tls_secret(kube_api, ns), "billing")
        cert = leaf(files) if files is not None else None
        return cert if cert is not None and uris(cert) == [f"spiffe://example.org/ns/{ns}/goq/billing"] else None

    assert await eventually(repaired), f"the tampered entry was not repaired; operator log:\n{operator.log()}"
    assert uris(leaf(await issued(kube_api, ns, "orders"))) == [f"spiffe://example.org/ns/{ns}/goq/orders"]


async def test_identities_written_at_once_by_handlers_and_sweeps_all_keep_their_certificates(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    identities = [f"svc-{i}" for i in range(8)]
    await asyncio.gather(*(create_goqueue(kube_api, ns, name) for name in identities))

    async def all_there() -> dict[str, bytes] | None:
        secret = await tls_secret(kube_api, ns)
        return data(secret) if secret is not None and all(entry(secret, i) for i in identities) else None

    assert await eventually(all_there, within=60), f"an update was lost; operator log:\n{operator.log()}"
    await asyncio.sleep(2)  # several sweeps (every 0.5 s) and renewals later, none has dropped another's entry
    secret = await tls_secret(kube_api, ns)
    for identity in identities:
        files = entry(secret, identity)
        assert files is not None, f"the certificate of {identity} was lost"
        assert uris(leaf(files)) == [f"spiffe://example.org/ns/{ns}/goq/{identity}"]
    for identity in identities:
        condition = await eventually(functools.partial(condition_of, kube_api, ns, identity, "True"))
        assert condition is not None, f"no condition Certificate=True on {identity}"


async def test_deleting_a_goqueue_removes_its_certificate_and_leaves_the_others(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    await create_goqueue(kube_api, ns, "orders")
    await create_goqueue(kube_api, ns, "billing")
    await issued(kube_api, ns, "orders")
    await issued(kube_api, ns, "billing")
    await k8s.CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", "orders")

    async def removed() -> k8s.V1Secret | None:
        secret = await tls_secret(kube_api, ns)
        return secret if secret is not None and entry(secret, "orders") is None else None

    secret = await eventually(removed)
    assert secret is not None, f"the deleted identity's certificate stayed; operator log:\n{operator.log()}"
    files = entry(secret, "billing")
    assert files is not None, "another identity's certificate went with it"
    assert uris(leaf(files)) == [f"spiffe://example.org/ns/{ns}/goq/billing"]

    # The last GoQueue of the namespace goes too: the Secret stays, with the trust bundle only.
    await k8s.CustomObjectsApi(kube_api).delete_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", "billing")

    async def emptied() -> dict[str, bytes] | None:
        secret = await tls_secret(kube_api, ns)
        return data(secret) if secret is not None and set(data(secret)) == {"ca.crt"} else None

    assert await eventually(emptied), f"the last certificate stayed; operator log:\n{operator.log()}"


async def test_a_secret_not_made_by_goq_is_left_alone_and_reported(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    mine = {"metadata": {"name": SECRET}, "type": "Opaque", "data": {"note": "bWluZQ=="}}
    await k8s.CoreV1Api(kube_api).create_namespaced_secret(ns, mine)
    await create_goqueue(kube_api, ns, "audit")
    condition = await eventually(lambda: condition_of(kube_api, ns, "audit", "False"))
    assert condition is not None, f"no condition Certificate=False; operator log:\n{operator.log()}"
    assert condition["reason"] == "CertificateNotManaged"
    assert SECRET in condition["message"]
    secret = await tls_secret(kube_api, ns)
    assert secret is not None
    assert data(secret) == {"note": b"mine"}, "the user's Secret was overwritten"


async def test_an_identity_that_does_not_fit_in_the_namespace_secret_is_refused_with_the_reason(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    await create_goqueue(kube_api, ns, "orders")
    await issued(kube_api, ns, "orders")
    # Fill the Secret almost to the 1 MiB limit, as some 600 identities would (kept: not an identity's key).
    filler = base64.b64encode(b"x" * (1024 * 1024 - 12 * 1024)).decode()
    with warnings.catch_warnings():  # aiohttp warns of a body over 1 MiB (base64 makes it 1.3 MiB): meant here
        warnings.simplefilter("ignore", ResourceWarning)
        await k8s.CoreV1Api(kube_api).patch_namespaced_secret(SECRET, ns, {"data": {"filler": filler}})
    await create_goqueue(kube_api, ns, "late")
    condition = await eventually(lambda: condition_of(kube_api, ns, "late", "False"))
    assert condition is not None, f"no condition Certificate=False; operator log:\n{operator.log()}"
    assert condition["reason"] == "CertificateSecretFull"
    assert "1 MiB" in condition["message"]
    assert SECRET in condition["message"]
    assert entry(await tls_secret(kube_api, ns), "orders") is not None, "an identity already in it lost its place"


async def test_the_webhook_mounts_only_the_identitys_keys_read_only_and_points_the_sidecar_at_them(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    created = await k8s.CoreV1Api(kube_api).create_namespaced_pod(ns, simple_pod("orders-1", {"goq.io/id": "orders"}))
    pod = kube_api.sanitize_for_serialization(created)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[TLS_VOLUME]["secret"]["secretName"] == SECRET
    assert volumes[TLS_VOLUME]["secret"]["items"] == [
        {"key": "orders.tls.crt", "path": "tls.crt"},
        {"key": "orders.tls.key", "path": "tls.key"},
        {"key": "ca.crt", "path": "ca.crt"},
    ]
    assert not volumes[TLS_VOLUME]["secret"].get("optional"), "an optional volume would start the sidecar without TLS"
    [sidecar] = [c for c in pod["spec"]["containers"] if c["name"] == "goq-sidecar"]
    mount = next(m for m in sidecar["volumeMounts"] if m["name"] == TLS_VOLUME)
    assert (mount["mountPath"], mount["readOnly"]) == (TLS_MOUNT_PATH, True)
    assert {"name": "GOQ_TLS_DIR", "value": TLS_MOUNT_PATH} in sidecar["env"]
    # The pod asked for an identity without a GoQueue: the operator makes one, and with it the certificate.
    await issued(kube_api, ns, "orders")


async def test_the_ca_is_rotated_with_an_overlap_in_which_both_are_trusted(
    kube_api: k8s.ApiClient, operator: OperatorProcess, ns: str
) -> None:
    await create_goqueue(kube_api, ns, "orders")
    await issued(kube_api, ns, "orders")
    first = await ca_secret(kube_api, operator)

    async def published() -> dict[str, bytes] | None:
        ca = await ca_secret(kube_api, operator)
        return ca if "next.crt" in ca or ca["tls.crt"] != first["tls.crt"] else None

    during = await eventually(published, within=CA_LIFETIME)
    assert during is not None, f"the CA was never rotated; operator log:\n{operator.log()}"

    async def signs() -> dict[str, bytes] | None:
        ca = await ca_secret(kube_api, operator)
        return ca if ca["tls.crt"] != first["tls.crt"] else None

    after = await eventually(signs, within=30)
    assert after is not None, f"the successor never signed; operator log:\n{operator.log()}"
    old = x509.load_pem_x509_certificate(first["tls.crt"])
    new = x509.load_pem_x509_certificate(after["tls.crt"])
    bundle = trusted(after["ca.crt"], datetime.datetime.now(datetime.UTC))
    assert {old, new} <= set(bundle), "the old CA left the trust bundle while certificates it signed are valid"

    async def reissued() -> x509.Certificate | None:
        files = entry(await tls_secret(kube_api, ns), "orders")
        cert = leaf(files) if files is not None else None
        return cert if cert is not None and cert.issuer == new.subject and verifies(cert, after["tls.crt"]) else None

    assert await eventually(reissued, within=30), "the identity's certificate was not issued by the new CA"
    shipped = trusted((await issued(kube_api, ns, "orders"))["ca.crt"], datetime.datetime.now(datetime.UTC))
    assert {old, new} <= set(shipped), "the sidecars' bundle must trust peers not yet renewed"
