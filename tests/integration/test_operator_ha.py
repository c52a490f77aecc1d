"""Two operator replicas against a real kube-apiserver: both answer the webhook, one handles resources.

The API server reaches the webhook through one URL. In a cluster that is the Service goq-webhook in front of
both pods; here it is ``ServiceProxy``, a loopback TCP forwarder of the test's own that connects each
connection to the first replica that accepts it (as a Service with one endpoint gone would). Both replicas
are also called directly, so each one's answer is checked on its own.
"""

import asyncio
import base64
import contextlib
import json
import os
import signal
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from goq.devenv import processes
from goq.devenv.ports import free_port
from goq.keyring import SECRET_NAME
from goq.operator.admission import MUTATE_PATH

from .operator_kube import (
    OPERATOR_CODE,
    OperatorProcess,
    apply_crds,
    eventually,
    namespace,
    operator_namespace,
    simple_pod,
)

GROUP, VERSION = "goq.io", "v1alpha1"
LEASE = "goq-operator-leader"
LEASE_DURATION = 3.0
QUICK_LEASE = {
    "GOQ_LEADER_LEASE_DURATION": f"{LEASE_DURATION:g}s",
    "GOQ_LEADER_RENEW_DEADLINE": "2s",
    "GOQ_LEADER_RETRY_PERIOD": "500ms",
}


class ServiceProxy:
    """A loopback TCP forwarder to several backends: each connection goes to the first that accepts it."""

    def __init__(self, backends: list[int]) -> None:
        self.backends, self.port = backends, free_port()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> "ServiceProxy":
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            for port in self.backends:
                try:
                    up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    continue
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
                return
        finally:
            writer.close()
            self.tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def _healthy(op: OperatorProcess) -> bool:
    if not op.server.alive():
        raise AssertionError(f"the operator exited; its log:\n{op.log()}")
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"https://127.0.0.1:{op.port}/healthz", ssl=False) as resp,
        ):
            return resp.status == 200
    except aiohttp.ClientError:
        return False


@contextlib.asynccontextmanager
async def two_replicas(
    api: k8s.ApiClient, ns: str, kubeconfig: Path, workdir: Path
) -> AsyncIterator[tuple[list[OperatorProcess], ServiceProxy]]:
    """Two operator processes started at the same moment, one webhook URL (the proxy) in front of both."""
    ports = [free_port(), free_port()]
    async with ServiceProxy(ports) as proxy:
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env |= {
            "KUBECONFIG": str(kubeconfig),
            "TMPDIR": str(workdir),  # the Kubernetes client writes inline CA data to temporary files: a killed
            # operator leaves them in its workdir, not in /tmp
            "GOQ_OPERATOR_NAMESPACE": ns,
            "GOQ_WEBHOOK_HOST": "127.0.0.1",
            "GOQ_WEBHOOK_URL": f"https://127.0.0.1:{proxy.port}",
            "GOQ_STALE_AFTER": "2s",
            "GOQ_SWEEP_INTERVAL": "500ms",
            "GOQ_WEBHOOK_DRAIN": "0s",
            "GOQ_SIDECAR_IMAGE": "example/goq-sidecar:test",
            **QUICK_LEASE,
        }
        replicas = [
            OperatorProcess(
                ns,
                port,
                processes.start(
                    f"goq-operator-{i}",
                    [sys.executable, "-c", OPERATOR_CODE],
                    workdir / f"replica-{i}.log",
                    env=env | {"GOQ_WEBHOOK_PORT": str(port), "POD_NAME": f"replica-{i}"},
                ),
            )
            for i, port in enumerate(ports)
        ]
        admission = k8s.AdmissionregistrationV1Api(api)
        try:
            for op in replicas:
                assert await eventually(lambda op=op: _healthy(op), within=60), f"never served:\n{op.log()}"

            async def registered() -> bool:
                try:
                    hook = await admission.read_mutating_webhook_configuration("goq-sidecar-injector")
                except ApiException:
                    return False
                return f"127.0.0.1:{proxy.port}/" in (hook.webhooks[0].client_config.url or "")

            assert await eventually(registered), "the webhooks were never registered"
            yield replicas, proxy
        finally:
            for op in replicas:
                await asyncio.to_thread(op.server.stop)
            for delete in (
                admission.delete_mutating_webhook_configuration("goq-sidecar-injector"),
                admission.delete_validating_webhook_configuration("goq-validator"),
            ):
                with contextlib.suppress(ApiException):
                    await delete


async def _logged(op: OperatorProcess, text: str) -> bool:
    return op.logged(text)


async def holder(api: k8s.ApiClient, ns: str) -> str:
    try:
        lease = await k8s.CoordinationV1Api(api).read_namespaced_lease(LEASE, ns)
    except ApiException:
        return ""
    return str(lease.spec.holder_identity or "")


def leader_and_follower(replicas: list[OperatorProcess], held_by: str) -> tuple[OperatorProcess, OperatorProcess]:
    first, second = replicas
    return (first, second) if held_by.startswith("replica-0-") else (second, first)


def served_certificate(port: int) -> bytes:
    """The DER certificate a replica presents."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    import socket

    with socket.create_connection(("127.0.0.1", port)) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def pem_to_der(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    return base64.b64decode(body)


def review(pod: dict[str, Any], namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": pod | {"metadata": pod["metadata"] | {"namespace": namespace}},
        },
    }


async def admit(port: int, body: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"https://127.0.0.1:{port}{MUTATE_PATH}", json=body, ssl=False) as resp,
    ):
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer


async def goqueue(api: k8s.ApiClient, ns: str, name: str, spec: dict[str, Any] | None = None) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "GoQueue", "metadata": {"name": name}, "spec": spec or {}}
    await k8s.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "goqueues", body)


async def has_service(api: k8s.ApiClient, ns: str, name: str) -> bool:
    try:
        await k8s.CoreV1Api(api).read_namespaced_service(f"goq-{name}", ns)
    except ApiException:
        return False
    return True


async def test_both_replicas_answer_the_webhook_with_one_certificate_and_only_the_leader_reconciles(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    admission = k8s.AdmissionregistrationV1Api(kube_api)
    async with (
        operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig),
        namespace(kube_api, "ha") as ns,
        two_replicas(kube_api, op_ns, kubeconfig, tmp_path) as (replicas, _),
    ):
        held_by = await eventually(lambda: holder(kube_api, op_ns))
        leader, follower = leader_and_follower(replicas, held_by)

        # Both started at once and raced to make the Secrets: one of each, and both serve the Secret's certificate.
        tls = await core.read_namespaced_secret("goq-webhook-tls", op_ns)
        in_secret = pem_to_der(base64.b64decode(tls.data["tls.crt"]))
        for op in replicas:
            assert await asyncio.to_thread(served_certificate, op.port) == in_secret
        hook = await admission.read_mutating_webhook_configuration("goq-sidecar-injector")
        assert base64.b64decode(hook.webhooks[0].client_config.ca_bundle) == base64.b64decode(tls.data["ca.crt"])
        secrets_before = {
            name: (await core.read_namespaced_secret(name, op_ns)).data
            for name in ("goq-webhook-tls", SECRET_NAME, "goq-identity-ca")
        }

        # Each replica answers an AdmissionReview on its own, with the sidecar patch.
        pod = simple_pod("direct", {"goq.io/id": "orders"})
        for op in replicas:
            answer = (await admit(op.port, review(pod)))["response"]
            assert answer["allowed"] is True
            patch = json.loads(base64.b64decode(answer["patch"]))
            assert any("goq-sidecar" in json.dumps(p) for p in patch), patch

        # Only the leader handles resources: the GoQueue gets its Service, and the follower never led.
        await goqueue(kube_api, ns, "orders")
        assert await eventually(lambda: has_service(kube_api, ns, "orders")), leader.log()
        assert leader.logged("became the leader"), leader.log()
        assert not follower.logged("became the leader"), follower.log()
        assert await eventually(lambda: _logged(follower, "standing by"), within=5), follower.log()

        # A GoQueue's sidecar overrides reach the follower's webhook too (within a sweep interval).
        await goqueue(kube_api, ns, "custom", {"sidecar": {"image": "example/goq-sidecar:custom"}})

        async def injects_custom(op: OperatorProcess) -> bool:
            answer = (await admit(op.port, review(simple_pod("c", {"goq.io/id": "custom"}), ns)))["response"]
            return "example/goq-sidecar:custom" in base64.b64decode(answer["patch"]).decode()

        for op in (follower, leader):
            assert await eventually(lambda op=op: injects_custom(op), within=10), op.log()

        # Registration does not flap: with both replicas running, neither configuration is written again.
        versions = [
            (await admission.read_mutating_webhook_configuration("goq-sidecar-injector")).metadata.resource_version,
            (await admission.read_validating_webhook_configuration("goq-validator")).metadata.resource_version,
        ]
        await asyncio.sleep(3)
        assert versions == [
            (await admission.read_mutating_webhook_configuration("goq-sidecar-injector")).metadata.resource_version,
            (await admission.read_validating_webhook_configuration("goq-validator")).metadata.resource_version,
        ]
        for name, data in secrets_before.items():
            assert (await core.read_namespaced_secret(name, op_ns)).data == data, f"{name} was written again"


@pytest.mark.parametrize("injection", ["lenient", "required"])
async def test_killing_the_leader_hands_over_within_the_lease_and_pods_created_meanwhile_are_injected(
    kube_api: k8s.ApiClient, tmp_path: Path, injection: str
) -> None:
    """``lenient``: the default (``failurePolicy: Ignore``); ``required``: the namespace is labelled
    ``goq.io/injection=required``, and a refused creation is tried again, as a ReplicaSet does."""
    await apply_crds(kube_api)
    core = k8s.CoreV1Api(kube_api)
    strict = injection == "required"
    async with (
        operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig),
        namespace(kube_api, "ha", {"goq.io/injection": "required"} if strict else None) as ns,
        two_replicas(kube_api, op_ns, kubeconfig, tmp_path) as (replicas, _),
    ):
        held_by = await eventually(lambda: holder(kube_api, op_ns))
        leader, follower = leader_and_follower(replicas, held_by)
        await goqueue(kube_api, ns, "before")
        assert await eventually(lambda: has_service(kube_api, ns, "before"))
        keys_before = (await core.read_namespaced_secret(SECRET_NAME, op_ns)).data

        created: list[k8s.V1Pod] = []
        refusals: list[str] = []
        done = asyncio.Event()

        async def create_pods() -> None:
            while not done.is_set():
                name = f"p-{uuid.uuid4().hex[:6]}"
                try:
                    created.append(await core.create_namespaced_pod(ns, simple_pod(name, {"goq.io/id": "orders"})))
                except ApiException as exc:
                    if not (strict and "failed calling webhook" in str(exc.body)):
                        raise
                    refusals.append(name)  # refused, not created uninjected: tried again as a new pod
                await asyncio.sleep(0.1)

        creating = asyncio.create_task(create_pods())
        await asyncio.sleep(1)
        os.kill(leader.server.pid, signal.SIGKILL)
        killed_at = time.monotonic()

        async def follower_leads() -> bool:
            return (await holder(kube_api, op_ns)).startswith(follower_id(follower))

        assert await eventually(follower_leads, within=LEASE_DURATION + 10), follower.log()
        took = time.monotonic() - killed_at
        await goqueue(kube_api, ns, "after")  # reconciled by the new leader alone
        assert await eventually(lambda: has_service(kube_api, ns, "after"), within=15), follower.log()
        await asyncio.sleep(1)
        done.set()
        await creating

        assert took <= LEASE_DURATION + 2, f"the follower took over {took:.1f} s after the kill"
        assert follower.logged("became the leader"), follower.log()
        assert len(created) >= 20
        assert (await core.read_namespaced_secret(SECRET_NAME, op_ns)).data == keys_before
        uninjected = [p.metadata.name for p in created if "goq-sidecar" not in [c.name for c in p.spec.containers]]
        if strict:
            assert not uninjected, f"{len(uninjected)} of {len(created)} pods of a required namespace lack a sidecar"
            print(f"{len(created)} pods injected, {len(refusals)} creations refused and tried again")
            return
        assert len(uninjected) <= 1, f"{len(uninjected)} of {len(created)} pods created without a sidecar"
        if uninjected:  # everything else above held: only the known gap remains (issue 22, open)
            pytest.xfail(
                f"{uninjected[0]} (1 of {len(created)}) was created without a sidecar: a review in flight on the "
                "replica that was SIGKILLed ends in EOF, which failurePolicy Ignore lets through (about 1 run in 4 "
                "before the admission server had its own thread, 1 run in 16 after it (1 of 49 pods), 2026-12-05). "
                "Not a defect but the default's known price: the [required] case (goq.io/injection=required) "
                "is the guarantee, 0 uninjected over 8 runs"
            )


def follower_id(op: OperatorProcess) -> str:
    """The prefix of a replica's Lease identity (``POD_NAME`` and a random suffix)."""
    return "replica-0-" if op.server.name.endswith("-0") else "replica-1-"


async def test_replicas_racing_to_make_the_secrets_end_with_one_of_each_and_use_it(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    from goq.operator import identity_tls, keys, registration
    from goq.operator.settings import OperatorSettings

    core = k8s.CoreV1Api(kube_api)
    async with operator_namespace(kube_api, tmp_path) as (op_ns, _):
        settings = OperatorSettings.from_env(
            {"GOQ_OPERATOR_NAMESPACE": op_ns, "GOQ_WEBHOOK_URL": "https://127.0.0.1:9443"}
        )
        racers = range(4)
        certs = await asyncio.gather(*(registration.current_certificate(kube_api, settings) for _ in racers))
        rings = await asyncio.gather(*(keys.ensure_master(kube_api, settings) for _ in racers))
        authorities = await asyncio.gather(*(identity_tls.ensure_authority(kube_api, settings) for _ in racers))

        tls = await core.read_namespaced_secret("goq-webhook-tls", op_ns)
        assert {c.cert for c in certs} == {base64.b64decode(tls.data["tls.crt"])}
        ring = await core.read_namespaced_secret(SECRET_NAME, op_ns)
        assert all(r[0] == ring.data for r in rings)
        ca = await core.read_namespaced_secret("goq-identity-ca", op_ns)
        assert {a.to_secret_data() == {k: base64.b64decode(v) for k, v in ca.data.items()} for a in authorities} == {
            True
        }

        # Both replicas register the same configuration: one write, the other finds it equal and leaves it.
        written = await asyncio.gather(
            *(registration.apply_configurations(kube_api, settings, certs[0].ca) for _ in racers)
        )
        assert sum(written) == 2, written
        admission = k8s.AdmissionregistrationV1Api(kube_api)
        try:
            again = await registration.apply_configurations(kube_api, settings, certs[0].ca)
            assert again == 0
        finally:
            for delete in (
                admission.delete_mutating_webhook_configuration("goq-sidecar-injector"),
                admission.delete_validating_webhook_configuration("goq-validator"),
            ):
                with contextlib.suppress(ApiException):
                    await delete


class StepClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_lease_passes_only_when_it_expired_unrenewed_or_was_released(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    import pytest

    from goq.operator.leadership import Leadership, LeadershipLostError
    from goq.operator.settings import LeaderSettings

    settings = LeaderSettings(duration=15.0, renew_deadline=10.0, retry_period=0.2)
    async with namespace(kube_api, "lease") as ns:
        clock_a, clock_b = StepClock(), StepClock()
        a = Leadership(kube_api, ns, settings, "a", clock_a)
        b = Leadership(kube_api, ns, settings, "b", clock_b)
        assert await a.try_acquire()
        assert not await b.try_acquire()
        assert await a.try_acquire()  # a renews: b sees a new version and starts counting again
        clock_b.now += 14.0
        assert not await b.try_acquire()
        clock_b.now += 14.9
        assert not await b.try_acquire(), "taken over before the lease duration passed unrenewed"
        clock_b.now += 0.2
        assert await b.try_acquire(), "not taken over once the lease duration passed unrenewed"
        with pytest.raises(LeadershipLostError, match="held by b"):
            await asyncio.wait_for(a.hold(), 5)  # the old leader stops at its next renewal
        await b.release()
        assert await a.try_acquire(), "a released Lease is free at once"
        lease = await k8s.CoordinationV1Api(kube_api).read_namespaced_lease(LEASE, ns)
        assert (lease.spec.holder_identity, lease.spec.lease_transitions) == ("a", 2)


async def leader_metrics(op: OperatorProcess) -> tuple[float, float, float]:
    """``goq_operator_leader`` and the gained and lost counts, as a replica's /metrics reports them."""
    from prometheus_client.parser import text_string_to_metric_families

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"https://127.0.0.1:{op.port}/metrics", ssl=False) as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    samples = {
        (s.name, s.labels.get("change", "")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("goq_operator_leader")
    }
    return (
        samples[("goq_operator_leader", "")],
        samples[("goq_operator_leader_changes_total", "gained")],
        samples[("goq_operator_leader_changes_total", "lost")],
    )


async def test_metrics_show_which_replica_leads_and_the_other_takes_over_when_the_leader_stops(
    kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    await apply_crds(kube_api)
    async with (
        operator_namespace(kube_api, tmp_path) as (op_ns, kubeconfig),
        two_replicas(kube_api, op_ns, kubeconfig, tmp_path) as (replicas, _),
    ):
        held_by = await eventually(lambda: holder(kube_api, op_ns))
        leader, follower = leader_and_follower(replicas, held_by)

        async def leads(op: OperatorProcess) -> bool:
            return (await leader_metrics(op))[0] == 1

        assert await eventually(lambda: leads(leader), within=5), leader.log()
        assert await leader_metrics(leader) == (1, 1, 0)
        assert await leader_metrics(follower) == (0, 0, 0)
        assert leader.logged(f"became the leader (Lease {op_ns}/{LEASE}, as {held_by})"), leader.log()

        await asyncio.to_thread(leader.server.stop)  # SIGTERM, as a rollout does: the Lease is released
        assert leader.logged("stepped down: the operator is stopping"), leader.log()
        assert await eventually(lambda: leads(follower), within=LEASE_DURATION), follower.log()
        assert await leader_metrics(follower) == (1, 1, 0)
        assert (await holder(kube_api, op_ns)).startswith(follower_id(follower))
        assert follower.logged("became the leader"), follower.log()


async def test_a_leader_that_loses_the_lease_says_so_and_stops_counting_itself_the_leader(
    kube_api: k8s.ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    from goq.operator.leadership import Leadership, LeadershipLostError
    from goq.operator.settings import LeaderSettings

    settings = LeaderSettings(duration=15.0, renew_deadline=10.0, retry_period=0.2)
    async with namespace(kube_api, "lease") as ns:
        clock_b = StepClock()
        a = Leadership(kube_api, ns, settings, "a")
        b = Leadership(kube_api, ns, settings, "b", clock_b)
        caplog.set_level("INFO", logger="goq.operator")
        assert await a.acquire(asyncio.Event())
        assert (a.status.leading, dict(a.status.changes)) == (True, {"gained": 1})
        assert not await b.try_acquire()
        clock_b.now += 15.1  # b saw the Lease unchanged for its duration: it takes it over
        assert await b.try_acquire()
        with pytest.raises(LeadershipLostError):
            await asyncio.wait_for(a.hold(), 5)
        assert (a.status.leading, dict(a.status.changes)) == (False, {"gained": 1, "lost": 1})
        assert f"lost the leadership to b (Lease {ns}/{LEASE}, as a)" in caplog.text
        await a.release()  # not the holder: nothing to release, and the loss is not counted twice
        assert dict(a.status.changes) == {"gained": 1, "lost": 1}
        assert "stepped down" not in caplog.text
