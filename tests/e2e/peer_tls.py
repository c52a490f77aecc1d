"""Reaching an injected pod's peer port as another sidecar would: with an identity's certificate from the
operator's Secret (its keys of ``goq-identity-tls``), or in plaintext to show it is refused; and the
sidecar's own figures."""

import asyncio
import base64
import re
import urllib.request
from typing import Any

import grpc
from kubernetes_asyncio import client as k8s

from goq import names
from goq.api.v1 import envelope_pb2, peer_pb2, peer_pb2_grpc


async def identity_files(api: k8s.ApiClient, namespace: str, identity: str) -> dict[str, bytes]:
    """The identity's certificate as its sidecars get it (the webhook mounts only these keys of the namespace's
    Secret): ``tls.crt``, ``tls.key``, ``ca.crt``."""
    secret = await k8s.CoreV1Api(api).read_namespaced_secret(names.IDENTITY_TLS_SECRET, namespace)
    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
    keys = {"tls.crt": names.tls_cert_key(identity), "tls.key": names.tls_key_key(identity), "ca.crt": "ca.crt"}
    return {file: data[key] for file, key in keys.items()}


def peer_target(pod: dict[str, Any]) -> str:
    return f"{pod['status']['podIP']}:{names.PORT_PEER}"


def tls_channel(files: dict[str, bytes], pod: dict[str, Any]) -> grpc.aio.Channel:
    """A mutual-TLS channel to ``pod``'s peer port, checking its certificate names its identity's Service."""
    meta = pod["metadata"]
    host = f"{names.service_name(meta['labels'][names.LABEL_ID])}.{meta['namespace']}.svc"
    credentials = grpc.ssl_channel_credentials(files["ca.crt"], files["tls.key"], files["tls.crt"])
    return grpc.aio.secure_channel(peer_target(pod), credentials, options=[("grpc.ssl_target_name_override", host)])


async def deliver(channel: grpc.aio.Channel, envelopes: list[envelope_pb2.SignedEnvelope]) -> list[tuple[str, str]]:
    """One batch over ``channel``'s ``Deliver`` stream (10 s at most): each envelope's (outcome, reason)."""
    call = peer_pb2_grpc.PeerStub(channel).Deliver(timeout=10.0)
    await call.write(peer_pb2.DeliverBatch(seq=1, messages=envelopes))
    answer = await call.read()
    await call.done_writing()
    assert isinstance(answer, peer_pb2.DeliverAck), f"no answer on the Deliver stream: {answer!r}"
    return [(peer_pb2.Outcome.Name(r.outcome), r.reason) for r in answer.results]


async def plaintext_refused(pod: dict[str, Any]) -> grpc.StatusCode | None:
    """The status a plaintext peer call to ``pod`` fails with; ``None`` if it was served."""
    async with grpc.aio.insecure_channel(peer_target(pod)) as channel:
        try:
            await deliver(channel, [envelope_pb2.SignedEnvelope()])
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return None


def _metrics(pod: dict[str, Any]) -> str:
    url = f"http://{pod['status']['podIP']}:{names.PORT_HEALTH}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def metric(pod: dict[str, Any], name: str) -> float:
    """The sum of a ``goq_*`` metric's samples from the pod's sidecar (``/metrics`` on the health port)."""
    text = await asyncio.to_thread(_metrics, pod)
    pattern = re.compile(rf"^{re.escape(name)}(?:_total)?(?:\{{[^}}]*\}})? ([0-9.eE+-]+)$", re.MULTILINE)
    return sum(float(v) for v in pattern.findall(text))
