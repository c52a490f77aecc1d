"""Registering the admission webhooks with the API server, and keeping their certificate current.

Choices that keep a broken or slow webhook from blocking unrelated pods (docs/operator.md explains):
- pod injection: ``failurePolicy: Ignore``, ``timeoutSeconds`` 5, CREATE only, and namespaces or pods
  labelled ``goq.io/injection=disabled`` (the operator's own namespace, kube-system) are never sent.
  A pod that slips through uninjected is reported by the operator on its GoQueue and as an Event.
- strict injection, opt-in: pods in a namespace labelled ``goq.io/injection=required``, or labelled so
  themselves, go to entries with ``failurePolicy: Fail`` instead (as Istio's injector and Linkerd's in HA
  mode do): with no replica answering (a rollout, a replica killed mid-review) the pod is refused and its
  ReplicaSet (Job, StatefulSet) creates it again, so no pod of theirs runs without its sidecar. Each pod
  matches exactly one of the three entries.
- namespaces: one whose ``goq.io/injection`` label has any other value is refused when it is labelled
  (``failurePolicy: Ignore``: namespaces never wait for GoQ), since a typo would silently be lenient.
- GoQ custom resources: CREATE with ``failurePolicy: Fail`` (an unchecked GoQueue could break its
  sidecars); UPDATE with ``failurePolicy: Ignore``, so that with the operator down a label, annotation or
  finalizer change is not stuck (webhook rules cannot tell a metadata change from a spec change). The
  CRD's schema is the first line of defence and holds either way; with the operator up, updates are
  checked as strictly as creates, and updates that leave the spec alone always pass.
"""

import base64
import datetime
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import replace
from typing import Any, Final
from urllib.parse import urlparse

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq import names
from goq.errors import TemporaryError
from goq.operator import certificates
from goq.operator.admission import MUTATE_PATH, VALIDATE_NAMESPACE_PATH, VALIDATE_PATH, AdmissionServer
from goq.operator.kube import body as as_body
from goq.operator.kube import call, get_or_none, status_of
from goq.operator.settings import OperatorSettings

log = logging.getLogger("goq.operator")

OPT_OUT_LABEL: Final = names.LABEL_INJECTION
DISABLED, REQUIRED = names.INJECTION_DISABLED, names.INJECTION_REQUIRED


def _label(operator: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": OPT_OUT_LABEL, "operator": operator, "values": list(values)}]}


_NOT_DISABLED: Final = _label("NotIn", DISABLED)
_LENIENT: Final = _label("NotIn", DISABLED, REQUIRED)
_REQUIRED: Final = _label("In", REQUIRED)
_UNKNOWN_VALUE: Final = {
    "matchExpressions": [
        {"key": OPT_OUT_LABEL, "operator": "Exists"},
        {"key": OPT_OUT_LABEL, "operator": "NotIn", "values": [DISABLED, REQUIRED]},
    ]
}
INJECT: Final = "inject.goq.io"
INJECT_REQUIRED: Final = "inject-required.goq.io"
INJECT_REQUIRED_POD: Final = "inject-required-pod.goq.io"


def webhook_hosts(settings: OperatorSettings) -> tuple[str, ...]:
    """The names the serving certificate must carry."""
    if settings.webhook.url:
        host = urlparse(settings.webhook.url).hostname
        return (host or "localhost",)
    svc, ns = settings.webhook.service, settings.namespace
    return (f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local", f"{svc}.{ns}", svc)


def _client_config(settings: OperatorSettings, path: str, ca: bytes) -> dict[str, Any]:
    config: dict[str, Any] = {"caBundle": base64.b64encode(ca).decode()}
    if settings.webhook.url:
        config["url"] = settings.webhook.url.rstrip("/") + path
    else:
        config["service"] = {
            "name": settings.webhook.service,
            "namespace": settings.namespace,
            "path": path,
            "port": 443,
        }
    return config


def mutating_configuration(settings: OperatorSettings, ca: bytes) -> dict[str, Any]:
    """The MutatingWebhookConfiguration for sidecar injection: the lenient entry first, then the two strict ones
    (namespace labelled ``required``; pod labelled ``required`` in any other namespace). No pod matches two."""

    def webhook(name: str, failure_policy: str, namespaces: dict[str, Any], pods: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": failure_policy,
            "timeoutSeconds": settings.webhook.timeout,
            "reinvocationPolicy": "Never",
            "matchPolicy": "Equivalent",
            "namespaceSelector": namespaces,
            "objectSelector": pods,
            "rules": [
                {
                    "operations": ["CREATE"],
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "resources": ["pods"],
                    "scope": "Namespaced",
                }
            ],
            "clientConfig": _client_config(settings, MUTATE_PATH, ca),
        }

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": settings.webhook.mutating_name, "labels": {"app.kubernetes.io/part-of": "goq"}},
        "webhooks": [
            webhook(INJECT, "Ignore", _LENIENT, _LENIENT),
            webhook(INJECT_REQUIRED, "Fail", _REQUIRED, _NOT_DISABLED),
            webhook(INJECT_REQUIRED_POD, "Fail", _LENIENT, _REQUIRED),
        ],
    }


VALIDATE_CREATE: Final = "validate.goq.io"
VALIDATE_UPDATE: Final = "validate-update.goq.io"
VALIDATE_NAMESPACE: Final = "validate-namespace.goq.io"


def validating_configuration(settings: OperatorSettings, ca: bytes) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration for GoQueue and RetryPolicy: creates must pass the webhook;
    updates are checked when it answers and admitted when it cannot (see the module's docstring). A third
    entry sends only namespaces whose ``goq.io/injection`` label has a value GoQ does not know."""

    def webhook(name: str, operation: str, failure_policy: str) -> dict[str, Any]:
        return {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": failure_policy,
            "timeoutSeconds": settings.webhook.timeout,
            "matchPolicy": "Equivalent",
            "rules": [
                {
                    "operations": [operation],
                    "apiGroups": [names.GROUP],
                    "apiVersions": [names.VERSION],
                    "resources": [names.GOQUEUE_PLURAL, names.RETRYPOLICY_PLURAL],
                    "scope": "Namespaced",
                }
            ],
            "clientConfig": _client_config(settings, VALIDATE_PATH, ca),
        }

    namespaces = {
        "name": VALIDATE_NAMESPACE,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "timeoutSeconds": settings.webhook.timeout,
        "matchPolicy": "Equivalent",
        "objectSelector": _UNKNOWN_VALUE,
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["namespaces"],
                "scope": "Cluster",
            }
        ],
        "clientConfig": _client_config(settings, VALIDATE_NAMESPACE_PATH, ca),
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": settings.webhook.validating_name, "labels": {"app.kubernetes.io/part-of": "goq"}},
        "webhooks": [
            webhook(VALIDATE_CREATE, "CREATE", "Fail"),
            webhook(VALIDATE_UPDATE, "UPDATE", "Ignore"),
            namespaces,
        ],
    }


async def ensure_certificate(api: k8s.ApiClient, settings: OperatorSettings) -> certificates.TlsBundle:
    """The serving certificate from its Secret, issued (or renewed) first when needed."""
    core = k8s.CoreV1Api(api)
    name, ns = settings.webhook.tls_secret, settings.namespace
    secret = await get_or_none(f"reading Secret {ns}/{name}", core.read_namespaced_secret(name, ns))
    current = None
    if secret is not None:
        current = certificates.TlsBundle.from_secret_data(
            {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        )
    hosts = webhook_hosts(settings)
    now = datetime.datetime.now(datetime.UTC)
    if not certificates.needs_renewal(current, hosts, now):
        assert current is not None
        return current
    fresh = certificates.issue(hosts, now)
    fresh = replace(fresh, ca=certificates.ca_bundle(fresh, current))
    data = {k: base64.b64encode(v).decode() for k, v in fresh.to_secret_data().items()}
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "goq"}},
        "type": "Opaque",
        "data": data,
    }
    try:
        if secret is None:
            await core.create_namespaced_secret(ns, as_body(body))
        else:
            body["metadata"]["resourceVersion"] = secret.metadata.resource_version
            await core.replace_namespaced_secret(name, ns, as_body(body))
    except ApiException as exc:
        if exc.status == 409:  # another replica won the race: use its certificate
            raise TemporaryError("the webhook certificate changed meanwhile; reading it again", delay=0.5) from exc
        raise
    log.info("issued the webhook's serving certificate for %s", ", ".join(hosts))
    return fresh


def load_into(server: AdmissionServer, cert: certificates.TlsBundle) -> None:
    """Give the server the certificate (ssl needs files: a private temporary directory, removed at once)."""
    with tempfile.TemporaryDirectory(prefix="goq-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "tls.crt"), os.path.join(tmp, "tls.key")
        for path, content in ((cert_path, cert.cert), (key_path, cert.key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(content)
        server.load_certificate(cert_path, key_path)


CONFIG_HASH: Final = "goq.io/config-hash"
"""Annotation on each webhook configuration: a digest of what the operator wrote, so that an unchanged one is
never written again (replicas registering the same certificate do not churn the object)."""
_APPLY_ATTEMPTS: Final = 3


def _with_hash(config: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:32]
    config["metadata"].setdefault("annotations", {})[CONFIG_HASH] = digest
    return config


def _unchanged(existing: Any, config: dict[str, Any]) -> bool:
    """Written by the operator as it would write it now, and every caBundle still as written (an edit by hand
    that keeps the annotation but breaks the trust is repaired)."""
    if (existing.metadata.annotations or {}).get(CONFIG_HASH) != config["metadata"]["annotations"][CONFIG_HASH]:
        return False
    bundles = [w.client_config.ca_bundle for w in existing.webhooks or []]
    return bundles == [w["clientConfig"]["caBundle"] for w in config["webhooks"]]


async def apply_configurations(api: k8s.ApiClient, settings: OperatorSettings, ca: bytes) -> int:
    """Create or update both webhook configurations with the current caBundle; return how many were written.

    An existing configuration whose digest matches is left alone. Two replicas may both create (the loser's
    AlreadyExists) or both replace (the loser's Conflict): the loser reads again and compares, so it writes
    only if what it wants differs from what won, and never undoes the winner with an equal copy."""
    admission = k8s.AdmissionregistrationV1Api(api)
    plans: list[tuple[dict[str, Any], Any, Any, Any]] = [
        (
            _with_hash(mutating_configuration(settings, ca)),
            admission.read_mutating_webhook_configuration,
            admission.create_mutating_webhook_configuration,
            admission.replace_mutating_webhook_configuration,
        ),
        (
            _with_hash(validating_configuration(settings, ca)),
            admission.read_validating_webhook_configuration,
            admission.create_validating_webhook_configuration,
            admission.replace_validating_webhook_configuration,
        ),
    ]
    written = 0
    for config, read, create, replace_ in plans:
        name = config["metadata"]["name"]
        for attempt in range(_APPLY_ATTEMPTS):
            existing = await get_or_none(f"reading webhook configuration {name}", read(name))
            try:
                if existing is None:
                    await call(f"creating webhook configuration {name}", create(config))
                elif _unchanged(existing, config):
                    break
                else:
                    config["metadata"]["resourceVersion"] = existing.metadata.resource_version
                    await call(f"updating webhook configuration {name}", replace_(name, config))
            except TemporaryError as exc:
                if status_of(exc) == 409 and attempt + 1 < _APPLY_ATTEMPTS:  # another replica wrote it: compare again
                    config["metadata"].pop("resourceVersion", None)
                    continue
                raise
            written += 1
            log.info("registered webhook configuration %s", name)
            break
    return written


async def served_certificate(api: k8s.ApiClient, settings: OperatorSettings) -> certificates.TlsBundle | None:
    """The certificate in the Secret as it is (never issued or renewed here: that is the leader's job)."""
    name, ns = settings.webhook.tls_secret, settings.namespace
    secret = await get_or_none(f"reading Secret {ns}/{name}", k8s.CoreV1Api(api).read_namespaced_secret(name, ns))
    if secret is None:
        return None
    return certificates.TlsBundle.from_secret_data({k: base64.b64decode(v) for k, v in (secret.data or {}).items()})


async def current_certificate(api: k8s.ApiClient, settings: OperatorSettings) -> certificates.TlsBundle:
    """``ensure_certificate``, trying again when another replica renewed it at the same moment."""
    for _ in range(2):
        try:
            return await ensure_certificate(api, settings)
        except TemporaryError:
            continue
    return await ensure_certificate(api, settings)


async def ensure_webhook(api: k8s.ApiClient, settings: OperatorSettings, server: AdmissionServer) -> None:
    """Certificate current, served, and registered with a matching caBundle (idempotent; run periodically)."""
    cert = await current_certificate(api, settings)
    load_into(server, cert)
    await apply_configurations(api, settings, cert.ca)
