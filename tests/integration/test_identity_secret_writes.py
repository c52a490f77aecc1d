"""Many writers of one namespace's certificate Secret, on the real API server: ``ensure_identity`` run at once
for many identities (as the sweep, the kopf handlers and a second operator pod during a rollout do) loses
none of their entries. No operator process runs here: these writes are the only ones, so nothing repairs a
lost update afterwards and the Secret shows it at once.
"""

import asyncio
import base64
import datetime
from typing import Any

from cryptography import x509
from kubernetes_asyncio import client as k8s

from goq.errors import TemporaryError
from goq.operator.conditions import Condition
from goq.operator.identity_certs import plan_authority
from goq.operator.identity_tls import SECRET, Issuer, SecretView, ensure_identity
from goq.operator.settings import TlsSettings

from .operator_kube import namespace

IDENTITIES = [f"svc-{i}" for i in range(12)]


async def ensured(api: k8s.ApiClient, goqueue: dict[str, Any], issuer: Issuer, view: SecretView) -> Condition:
    """``ensure_identity`` until it stands, as kopf and the sweep retry it: a Secret that kept changing under
    every attempt is a TemporaryError, not a success."""
    while True:
        try:
            return await ensure_identity(api, goqueue, issuer, view=view)
        except TemporaryError:
            await asyncio.sleep(0.1)


def goqueue(ns: str, identity: str) -> dict[str, Any]:
    meta = {"name": identity, "namespace": ns, "uid": f"uid-{identity}", "resourceVersion": "1"}
    return {"apiVersion": "goq.io/v1alpha1", "kind": "GoQueue", "metadata": meta}


async def test_identities_written_at_once_into_one_secret_all_keep_their_certificates(
    kube_api: k8s.ApiClient,
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    issuer = Issuer(plan_authority(None, now, propagation=datetime.timedelta(minutes=3)), TlsSettings())
    async with namespace(kube_api, "tlswrites") as ns:
        # Two writers per identity, each with its own stale view of the Secret (read before any write).
        views = [SecretView(None, True) for _ in IDENTITIES * 2]
        writes = [ensured(kube_api, goqueue(ns, i), issuer, v) for i, v in zip(IDENTITIES * 2, views, strict=True)]
        conditions = await asyncio.gather(*writes)
        assert all(c.status for c in conditions), [c.message for c in conditions if not c.status]
        secret = await k8s.CoreV1Api(kube_api).read_namespaced_secret(SECRET, ns)
        data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        assert set(data) == {"ca.crt"} | {f"{i}.tls.{ext}" for i in IDENTITIES for ext in ("crt", "key")}, (
            "an identity's update was lost to another's"
        )
        for identity in IDENTITIES:
            cert = x509.load_pem_x509_certificate(data[f"{identity}.tls.crt"])
            uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            expected = f"spiffe://cluster.local/ns/{ns}/goq/{identity}"
            assert uris.get_values_for_type(x509.UniformResourceIdentifier) == [expected]
