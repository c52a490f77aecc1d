"""A key rotation under traffic on the local cluster: nothing poisoned, nothing lost, the retired key refused.

The operator rotates when asked (``goq.io/rotate-now`` on the master key ring) with a short propagation
delay; the pod runner syncs Secret volumes as a kubelet does (every 2 s here), and each sidecar follows
its volume. Pods started before the rotation run beside pods started after the new key signs; then
the old key is retired (``goq.io/retire-keys``) and an envelope forged with it is refused everywhere.
"""

import base64
import json
import time
from typing import Any

from kubernetes_asyncio import client as k8s

from goq.api.v1 import envelope_pb2
from goq.client import AsyncClient
from goq.devenv.demo import ACCEPTED, INVOICED, ready
from goq.devenv.stack import OPERATOR_NAMESPACE
from goq.identity import Address
from goq.keyring import ACTIVE_ENTRY, SECRET_NAME
from goq.messages import Message, new_message_id
from goq.operator.keys import RETIRE_ANNOTATION, ROTATE_ANNOTATION
from goq.signing import Keyring

from . import peer_tls
from .conftest import ShopSpace, eventually
from .peer_tls import identity_files, tls_channel

PROPAGATION = 6.0
"""Covers the copy (a 0.5 s sweep), the runner's 2 s volume sync and the sidecar's 2 s poll."""
OPERATOR_ENV = {"GOQ_KEY_PROPAGATION": f"{PROPAGATION:g}s"}
PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}
STEADY = {"ORDERS_INTERVAL": "0.05"}


async def ring(space: ShopSpace) -> tuple[str, dict[str, bytes]]:
    """The key ring copy in the test's namespace, as its pods' volumes get it: (active id, id -> key)."""
    secret = await k8s.CoreV1Api(space.api).read_namespaced_secret(SECRET_NAME, space.name)
    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
    return data.pop(ACTIVE_ENTRY).decode(), data


async def annotate_master(space: ShopSpace, annotation: str, value: str) -> None:
    patch = {"metadata": {"annotations": {annotation: value}}}
    await k8s.CoreV1Api(space.api).patch_namespaced_secret(SECRET_NAME, OPERATOR_NAMESPACE, patch)


async def running(space: ShopSpace, name: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        pod = space.api.sanitize_for_serialization(await k8s.CoreV1Api(space.api).read_namespaced_pod(name, space.name))
        return pod if ready(pod) else None

    pod = await eventually(check, 60)
    assert pod, f"pod {name} never became Ready; operator log:\n{space.stack.operator_log()}"
    return pod


def forged(namespace: str, key_id: str, key: bytes, to: str = "billing") -> envelope_pb2.SignedEnvelope:
    message = Message(
        id=new_message_id(),
        source=Address("orders", namespace),
        destination=Address(to, namespace),
        created_at_ms=int(time.time() * 1000),
        payload=json.dumps({"order": 0}).encode(),
    )
    body = message.encode()
    key_id, signature = Keyring({key_id: key}, key_id).sign(body)
    return envelope_pb2.SignedEnvelope(body=body, key_id=key_id, signature=signature, attempt=1)


async def deliver(
    space: ShopSpace, pod: dict[str, Any], envelopes: list[envelope_pb2.SignedEnvelope]
) -> list[tuple[str, str]]:
    """Straight to the pod's peer port, as orders' sidecar would (with its certificate): each envelope's
    (outcome, reason)."""
    async with tls_channel(await identity_files(space.api, space.name, "orders"), pod) as channel:
        return await peer_tls.deliver(channel, envelopes)


async def test_a_rotation_with_old_and_new_pods_mixed_poisons_nothing_loses_nothing_and_refuses_the_retired_key(
    space: ShopSpace,
) -> None:
    await space.queues(PATIENT, "orders", "billing")
    await space.pod("billing", name="billing-old")
    await space.pod("orders", STEADY, name="orders-old")
    pods = {name: await running(space, name) for name in ("billing-old", "orders-old")}
    numbers = space.shop.numbers

    async def flowing() -> bool:
        return len(numbers(pods["billing-old"], INVOICED)) >= 10

    assert await eventually(flowing, 30), "nothing flowed before the rotation"
    old_id, old_keys = await ring(space)

    await annotate_master(space, ROTATE_ANNOTATION, "e2e")

    async def new_key_signs() -> str | None:
        active, _ = await ring(space)
        return active if active != old_id else None

    new_id = await eventually(new_key_signs, PROPAGATION + 20)
    assert new_id, f"the new key never became active; operator log:\n{space.stack.operator_log()}"
    _, keys = await ring(space)
    assert old_id in keys, "the old key went with the rotation: messages signed with it could not verify"

    # Pods started after the new key signs, beside those started before it.
    await space.pod("billing", name="billing-new")
    await space.pod("orders", {**STEADY, "ORDERS_START": "100001"}, name="orders-new")
    pods |= {name: await running(space, name) for name in ("billing-new", "orders-new")}

    def invoiced() -> set[int]:
        return numbers(pods["billing-old"], INVOICED) | numbers(pods["billing-new"], INVOICED)

    async def new_pods_flowing() -> bool:
        return len({n for n in invoiced() if n > 100000}) >= 10

    assert await eventually(new_pods_flowing, 30), "nothing from the pod started after the rotation arrived"

    await annotate_master(space, RETIRE_ANNOTATION, old_id)

    async def retired() -> bool:
        return old_id not in (await ring(space))[1]

    assert await eventually(retired, PROPAGATION + 20), f"{old_id} never retired:\n{space.stack.operator_log()}"
    billings = [pods["billing-old"], pods["billing-new"]]
    with_old = forged(space.name, old_id, old_keys[old_id])
    known_key = forged(space.name, new_id, keys[new_id], to="shipping")  # the new key verifies: refused for its address

    async def old_key_refused_everywhere() -> list[list[tuple[str, str]]] | None:
        answers = [await deliver(space, pod, [with_old, known_key]) for pod in billings]
        return answers if all(a[0][0] == "OUTCOME_RETRY_LATER" for a in answers) else None

    answers = await eventually(old_key_refused_everywhere, 20)
    assert answers, "a billing sidecar still accepts the retired key"
    for (old, known), pod in zip(answers, billings, strict=True):
        where = pod["metadata"]["name"]
        assert old[1].startswith(f"unknown-key: signed with unknown key '{old_id}'"), (where, old)
        assert known[0] == "OUTCOME_REJECTED", (where, known)
        assert known[1].startswith("wrong-destination"), (where, known)

    accepted = numbers(pods["orders-old"], ACCEPTED) | numbers(pods["orders-new"], ACCEPTED)

    async def all_arrived() -> bool:
        return accepted <= invoiced()

    await eventually(all_arrived, 30)
    lost = accepted - invoiced()
    before = {n for n in accepted if n <= 100000}
    print(f"{len(accepted)} accepted ({len(before)} by the old sender), {len(accepted) - len(lost)} invoiced")
    assert not lost, f"{len(lost)} of {len(accepted)} accepted orders never invoiced, e.g. {sorted(lost)[:5]}"
    assert len(before) >= 20
    assert len(accepted - before) >= 10
    for name, pod in pods.items():
        async with AsyncClient(space.sidecar_address(pod)) as client:
            assert (await client.stats()).poisoned == 0, name
            assert await client.poisoned() == [], name
