"""Mutual TLS between injected sidecars, on by default, through certificate renewals under traffic.

The session cluster's operator issues each identity's certificate with a short life (``CERT_LIFETIME``,
75 s, renewed after 50 s), the kubelet updates the Secret volumes (the dev node resyncs them every ~10 s),
and each sidecar follows its volume: renewals happen while orders sends to billing, and not one delivery
attempt may fail for it.
"""

import asyncio
import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509

from goq import names
from goq.client import AsyncClient
from goq.webhook.settings import CONTAINER_NAME

from .conftest import ACCEPTED, CERT_LIFETIME, INVOICED, ShopSpace, eventually
from .peer_tls import identity_files, metric

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}
RENEWED = "TLS certificate in "


def serial(files: dict[str, bytes]) -> int:
    return x509.load_pem_x509_certificate(files["tls.crt"]).serial_number


def _served(pod: dict[str, Any], files: dict[str, bytes], workdir: Path) -> int:
    """The serial of the certificate the pod's peer port presents now (a TLS handshake with a client certificate)."""
    for name, content in files.items():
        (workdir / name).write_bytes(content)
    context = ssl.create_default_context(cafile=str(workdir / "ca.crt"))
    context.load_cert_chain(workdir / "tls.crt", workdir / "tls.key")
    context.set_alpn_protocols(["h2"])
    meta = pod["metadata"]
    host = f"{names.service_name(meta['labels'][names.LABEL_ID])}.{meta['namespace']}.svc"
    with (
        socket.create_connection((pod["status"]["podIP"], names.PORT_PEER), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_two_identities_deliver_over_mutual_tls_and_renewals_under_traffic_refuse_nothing(
    space: ShopSpace, tmp_path: Path
) -> None:
    await space.queues(PATIENT, "orders", "billing")
    await space.pod("billing")
    await space.pod("orders", {"ORDERS_INTERVAL": "0.05"})
    orders = await space.running("orders")
    billing = await space.running("billing")

    async def flowing() -> bool:
        return len(await space.numbers(billing, INVOICED)) >= 10

    assert await eventually(flowing, 60, interval=1.0), "nothing flowed"
    for pod in (orders, billing):
        log = await space.log(pod, CONTAINER_NAME)
        assert f"peer port: mutual TLS as spiffe://cluster.local/ns/{space.name}/goq/{pod['metadata']['name']}" in log
    failed_before = await metric(orders, "goq_delivery_attempts_failed")
    first = {app: serial(await identity_files(space.api, space.name, app)) for app in ("orders", "billing")}
    reloads_before = {
        app: (await space.log(p, CONTAINER_NAME)).count(RENEWED)
        for app, p in (("orders", orders), ("billing", billing))
    }

    async def both_renewed_and_reloaded() -> bool:
        for app, pod in (("orders", orders), ("billing", billing)):
            if serial(await identity_files(space.api, space.name, app)) == first[app]:
                return False
            if (await space.log(pod, CONTAINER_NAME)).count(RENEWED) <= reloads_before[app]:
                return False
        return True

    assert await eventually(both_renewed_and_reloaded, 2 * CERT_LIFETIME, interval=2.0), (
        f"no renewal reached both sidecars; operator log:\n{space.operator_log()}"
    )
    # billing's peer port presents a renewed certificate without a restart.
    files = await identity_files(space.api, space.name, "orders")
    current = serial(await identity_files(space.api, space.name, "billing"))

    async def serves_renewed() -> bool:
        return await asyncio.to_thread(_served, billing, files, tmp_path) != first["billing"]

    assert await eventually(serves_renewed, 30), "billing's peer port still presents its first certificate"
    assert current != first["billing"]

    # Traffic goes on across the renewal; then everything accepted arrives.
    invoiced_at_renewal = len(await space.numbers(billing, INVOICED))

    async def more_after() -> bool:
        return len(await space.numbers(billing, INVOICED)) >= invoiced_at_renewal + 50

    assert await eventually(more_after, 60, interval=1.0), "deliveries stopped after the renewal"
    accepted = await space.numbers(orders, ACCEPTED)

    async def all_arrived() -> bool:
        return accepted <= await space.numbers(billing, INVOICED)

    await eventually(all_arrived, 60, interval=1.0)
    lost = accepted - await space.numbers(billing, INVOICED)
    assert not lost, f"{len(lost)} of {len(accepted)} accepted orders never invoiced, e.g. {sorted(lost)[:5]}"
    failed = await metric(orders, "goq_delivery_attempts_failed") - failed_before
    assert failed == 0, f"{failed:g} delivery attempts failed across the certificate renewals"
    assert await metric(billing, "goq_deliveries_refused") == 0
    for pod in (orders, billing):
        assert space.restarts(await space.read(pod["metadata"]["name"])) == 0, "a sidecar restarted"
        async with space.sidecar(pod) as address, AsyncClient(address) as client:
            assert (await client.stats()).poisoned == 0
    print(f"{len(accepted)} accepted and invoiced over mutual TLS across certificate renewals, 0 attempts failed")
