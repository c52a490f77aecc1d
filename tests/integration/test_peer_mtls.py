"""Mutual TLS between sidecars, with certificates from the operator's identity CA: a sender must present a
certificate of that CA, valid now, naming the identity its envelopes are from; renewed certificates take
over with nothing refused and nothing lost."""

import asyncio
import datetime
import json
import socket
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from goq.api.v1 import envelope_pb2, peer_pb2, peer_pb2_grpc
from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.secret_volume import SecretVolume
from goq.devenv.sidecars import SidecarProcess
from goq.identity import Address
from goq.operator.certificates import TlsBundle
from goq.operator.identity_certs import issue_identity, new_identity_authority
from goq.operator.x509_issuing import Authority
from goq.sidecar.adapters.peer_tls import service_host

from .conftest import App
from .test_peer_security import signed

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
NO_NAME_MATCH = "No match found for server name"
"""What gRPC core logs, as an ERROR, for a TLS handshake asking for a name the server's certificate lacks."""
SHORT_RETRIES = json.dumps({"maxAttempts": 3, "initialBackoff": "50ms", "maxBackoff": "100ms"})


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def certificate(ca: Authority, identity: str, lifetime: float = 3600.0) -> TlsBundle:
    address = Address(identity, "default")
    span = datetime.timedelta(seconds=lifetime)
    return issue_identity(
        ca, address, trust_domain="cluster.local", cluster_domain="cluster.local", now=now(), lifetime=span
    )


def mount(tmp_path: Path, name: str, cert: TlsBundle) -> SecretVolume:
    return SecretVolume(tmp_path / f"tls-{name}", cert.to_secret_data())


def with_tls(group: dict[str, SidecarProcess], volumes: dict[str, SecretVolume]) -> dict[str, SidecarProcess]:
    """Start each sidecar of ``group`` with its mounted certificate."""
    for name, sidecar in group.items():
        sidecar.env["GOQ_TLS_DIR"] = str(volumes[name].path)
        sidecar.start()
    return group


async def deliver_as(
    billing: SidecarProcess, cert: TlsBundle | None, envelopes: list[envelope_pb2.SignedEnvelope]
) -> list[peer_pb2.MessageResult]:
    """Deliver straight to billing's peer port, presenting ``cert`` (None: plaintext)."""
    override = [("grpc.ssl_target_name_override", service_host(Address("billing", "default")))]
    channel = (
        grpc.aio.insecure_channel(billing.peer_target)
        if cert is None
        else grpc.aio.secure_channel(
            billing.peer_target, grpc.ssl_channel_credentials(cert.ca, cert.key, cert.cert), options=override
        )
    )
    async with channel:
        call = peer_pb2_grpc.PeerStub(channel).Deliver(timeout=10)
        await call.write(peer_pb2.DeliverBatch(seq=1, messages=envelopes))
        answer = await call.read()
        await call.done_writing()
        assert isinstance(answer, peer_pb2.DeliverAck)
        return list(answer.results)


async def poisoned(app: App, count: int, within: float = 30.0) -> list[pb.PoisonedMessage]:
    for _ in range(int(within / 0.1)):
        listed = list((await app.stub.ListPoisoned(pb.ListPoisonedRequest())).messages)
        if len(listed) >= count:
            return listed
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} poisoned messages expected, found {len(listed)}")


@pytest.fixture
def ca() -> Authority:
    return new_identity_authority(now())


def handshake(sidecar: SidecarProcess, cert: TlsBundle, server_name: str | None) -> None:
    """A TLS handshake with ``sidecar``'s peer port as a client presenting ``cert``, asking for ``server_name``
    (SNI; None: none), then closed."""
    context = ssl.create_default_context(cadata=cert.ca.decode())
    context.check_hostname = False
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "tls.crt").write_bytes(cert.cert)
        (Path(directory) / "tls.key").write_bytes(cert.key)
        context.load_cert_chain(Path(directory) / "tls.crt", Path(directory) / "tls.key")
    context.set_alpn_protocols(["h2"])
    host, port = sidecar.peer_target.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_name),
    ):
        pass


async def test_over_mutual_tls_messages_are_delivered_and_no_handshake_is_logged_as_an_error(
    sidecars: Sidecars, apps: Apps, ca: Authority, tmp_path: Path
) -> None:
    volumes = {n: mount(tmp_path, n, certificate(ca, n)) for n in ("orders", "billing")}
    group = with_tls(sidecars("orders", "billing", start=False), volumes)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    payloads = [f"m{i}".encode() for i in range(50)] + [b"L" * (3 * 1024 * 1024)]  # the last one: Peer.Transfer
    await orders.send("billing", payloads)
    got = await billing.receive(len(payloads), within=60)
    assert sorted(m.payload for m in got) == sorted(payloads)
    assert (await billing.stats()).refused == 0

    # gRPC core logs "No match found for server name: <SNI>" (ERROR, from its TLS layer) for each handshake that
    # asks for a name the server's certificate does not have. A sender asks for goq-<id>.<ns>.svc, as the
    # certificate names it (``ssl_target_name_override``): nothing logged, for Deliver and Transfer alike.
    for sidecar in group.values():
        assert NO_NAME_MATCH not in sidecar.log(), sidecar.log()[-2000:]
    # Nor for the Service's full name, or no name at all; a client asking for another name is logged, which
    # shows the check above would see the line.
    client = certificate(ca, "orders")
    for server_name in (f"{service_host(Address('billing', 'default'))}.cluster.local", None, "billing"):
        await asyncio.to_thread(handshake, group["billing"], client, server_name)
    for _ in range(50):
        if NO_NAME_MATCH in group["billing"].log():
            break
        await asyncio.sleep(0.1)
    logged = [line for line in group["billing"].log().splitlines() if NO_NAME_MATCH in line]
    assert [line.split("] ", 1)[-1] for line in logged] == [f"{NO_NAME_MATCH}: billing"]


async def test_a_sender_without_a_certificate_from_the_ca_valid_now_cannot_connect(
    sidecars: Sidecars, apps: Apps, ca: Authority, tmp_path: Path
) -> None:
    billing = with_tls(
        sidecars("billing", start=False), {"billing": mount(tmp_path, "billing", certificate(ca, "billing"))}
    )
    other_ca = certificate(new_identity_authority(now()), "orders")
    other_ca = TlsBundle(ca=ca.cert, cert=other_ca.cert, key=other_ca.key)  # trusts billing; is not trusted by it
    expired = certificate(ca, "orders", lifetime=-60.0)  # not_after a minute ago (not_before five minutes ago)
    for cert in (None, other_ca, expired):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await deliver_as(billing["billing"], cert, [signed(b"should never arrive")])
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    app = apps(billing["billing"])
    assert await app.quiet(0.5) == []
    assert (await app.stats()).received == 0


async def test_a_sidecar_with_an_expired_certificate_retries_then_poisons_per_its_policy(
    sidecars: Sidecars, apps: Apps, ca: Authority, tmp_path: Path
) -> None:
    volumes = {"orders": mount(tmp_path, "orders", certificate(ca, "orders", lifetime=-60.0))}
    volumes["billing"] = mount(tmp_path, "billing", certificate(ca, "billing"))
    group = with_tls(sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=SHORT_RETRIES), volumes)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    (sent,) = await orders.send("billing", [b"from an expired certificate"])
    (listed,) = await poisoned(orders, 1)
    assert (listed.id, listed.reason, listed.attempts) == (sent.accepted.id, "max-attempts", 3)
    assert await billing.quiet(0.5) == []
    assert (await billing.stats()).received == 0


async def test_a_certificate_of_another_identity_than_from_is_refused_and_poisoned_as_identity_mismatch(
    sidecars: Sidecars, apps: Apps, ca: Authority, tmp_path: Path
) -> None:
    shipping = certificate(ca, "shipping")
    volumes = {
        "orders": mount(tmp_path, "orders", shipping),
        "billing": mount(tmp_path, "billing", certificate(ca, "billing")),
    }
    group = with_tls(sidecars("orders", "billing", start=False), volumes)
    orders, billing = apps(group["orders"]), apps(group["billing"])

    (direct,) = await deliver_as(group["billing"], shipping, [signed(b"orders' envelope, shipping's certificate")])
    assert direct.outcome == peer_pb2.OUTCOME_REJECTED
    assert direct.reason.startswith("identity-mismatch: the envelope is from orders.default, but the sender's")

    (sent,) = await orders.send("billing", [b"through the sidecar"])
    (listed,) = await poisoned(orders, 1)
    assert (listed.id, listed.reason) == (sent.accepted.id, "identity-mismatch")
    assert await billing.quiet(0.5) == []
    stats = await billing.stats()
    assert (stats.refused, stats.received) == (2, 0)


async def test_certificates_renewed_mid_flow_take_over_with_nothing_refused_or_lost(
    sidecars: Sidecars, apps: Apps, ca: Authority, tmp_path: Path
) -> None:
    lifetime = 15.0
    volumes = {n: mount(tmp_path, n, certificate(ca, n, lifetime)) for n in ("orders", "billing")}
    group = with_tls(sidecars("orders", "billing", start=False), volumes)
    orders, billing = apps(group["orders"]), apps(group["billing"])
    payloads = [f"m{i}".encode() for i in range(400)]

    async def flow() -> None:
        for start in range(0, len(payloads), 20):
            await orders.send("billing", payloads[start : start + 20])
            await asyncio.sleep(0.05)

    sending = asyncio.create_task(flow())
    await asyncio.sleep(1.0)
    for name, volume in volumes.items():  # the kubelet's update: new files, ``..data`` renamed over
        volume.write(certificate(ca, name).to_secret_data())
    await sending
    got = await billing.receive(len(payloads), within=60)
    assert sorted(m.payload for m in got) == sorted(payloads)

    await asyncio.sleep(lifetime)  # the first certificates have expired: new handshakes take the renewed ones
    renewed_client = certificate(ca, "orders")
    (direct,) = await deliver_as(group["billing"], renewed_client, [signed(b"to the renewed server")])
    assert direct.outcome == peer_pb2.OUTCOME_ACCEPTED
    large = b"L" * (3 * 1024 * 1024)  # Peer.Transfer: a new channel, so a new handshake, from orders
    await orders.send("billing", [large])
    got = await billing.receive(2, within=60)
    assert sorted(len(m.payload) for m in got) == sorted([len(b"to the renewed server"), len(large)])
    assert ((await billing.stats()).refused, (await orders.stats()).poisoned) == (0, 0)
