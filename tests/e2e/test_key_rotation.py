"""A key rotation under traffic on the local cluster: nothing poisoned, nothing lost, the retired key refused.

The operator rotates when asked (``goq.io/rotate-now`` on the master key ring) with a short propagation
delay (the session cluster's ``PROPAGATION``); the kubelet updates the pods' Secret volumes (the dev node
resyncs them every ~10 s), and each sidecar follows its volume. Pods started before the rotation run
beside pods started after the new key signs; then the old key is retired (``goq.io/retire-keys``) and an
envelope forged with it is refused everywhere.
"""

import base64
import json
import time
from typing import Any

from kubernetes_asyncio import client as k8s

from goq.api.v1 import envelope_pb2
from goq.client import AsyncClient
from goq.devenv.node.cluster import OPERATOR_NAMESPACE
from goq.identity import Address
from goq.keyring import ACTIVE_ENTRY, SECRET_NAME
from goq.messages import Message, new_message_id
from goq.operator.keys import RETIRE_ANNOTATION, ROTATE_ANNOTATION
from goq.pair_keys import NAMESPACE_ENTRY
from goq.signing import Keyring

from . import peer_tls
from .conftest import ACCEPTED, INVOICED, PROPAGATION, ShopSpace, eventually
from .peer_tls import identity_files, tls_channel

PATIENT = {"maxAttempts": 100, "initialBackoff": "100ms", "maxBackoff": "1s", "attemptTimeout": "2s", "maxAge": "5m"}
STEADY = {"ORDERS_INTERVAL": "0.05"}


async def ring(space: ShopSpace) -> Keyring:
    """The key ring in the test's namespace, read as its sidecars read their volume (either layout: a
    cluster-wide ring's keys, or the namespace's pair keys)."""
    secret = await k8s.CoreV1Api(space.api).read_namespaced_secret(SECRET_NAME, space.name)
    data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
    scope = data.pop(NAMESPACE_ENTRY, None)
    return Keyring(data, data.pop(ACTIVE_ENTRY).decode(), scope.decode() if scope is not None else None)


async def annotate_master(space: ShopSpace, annotation: str, value: str) -> None:
    patch = {"metadata": {"annotations": {annotation: value}}}
    await k8s.CoreV1Api(space.api).patch_namespaced_secret(SECRET_NAME, OPERATOR_NAMESPACE, patch)


def forged(namespace: str, keys: Keyring, to: str = "billing") -> envelope_pb2.SignedEnvelope:
    """An envelope from orders signed with ``keys``' active key, as a sender holding that ring would sign it."""
    message = Message(
        id=new_message_id(),
        source=Address("orders", namespace),
        destination=Address(to, namespace),
        created_at_ms=int(time.time() * 1000),
        payload=json.dumps({"order": 0}).encode(),
    )
    body = message.encode()
    key_id, signature = keys.sign(body, namespace)
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
    pods = {name: await space.running(name) for name in ("billing-old", "orders-old")}
    numbers = space.numbers

    async def flowing() -> bool:
        return len(await numbers(pods["billing-old"], INVOICED)) >= 10

    assert await eventually(flowing, 60, interval=1.0), "nothing flowed before the rotation"
    old_ring = await ring(space)
    old_id = old_ring.active

    await annotate_master(space, ROTATE_ANNOTATION, "e2e")

    async def new_key_signs() -> str | None:
        active = (await ring(space)).active
        return active if active != old_id else None

    new_id = await eventually(new_key_signs, PROPAGATION + 20)
    assert new_id, f"the new key never became active; operator log:\n{space.operator_log()}"
    new_ring = await ring(space)
    assert old_id in new_ring.ids, "the old key went with the rotation: messages signed with it could not verify"

    # Pods started after the new key signs, beside those started before it.
    await space.pod("billing", name="billing-new")
    await space.pod("orders", {**STEADY, "ORDERS_START": "100001"}, name="orders-new")
    pods |= {name: await space.running(name) for name in ("billing-new", "orders-new")}

    async def invoiced() -> set[int]:
        return await numbers(pods["billing-old"], INVOICED) | await numbers(pods["billing-new"], INVOICED)

    async def new_pods_flowing() -> bool:
        return len({n for n in await invoiced() if n > 100000}) >= 10

    assert await eventually(new_pods_flowing, 60, interval=1.0), (
        "nothing from the pod started after the rotation arrived"
    )

    await annotate_master(space, RETIRE_ANNOTATION, old_id)

    async def retired() -> bool:
        return old_id not in (await ring(space)).ids

    assert await eventually(retired, PROPAGATION + 20), f"{old_id} never retired:\n{space.operator_log()}"
    billings = [pods["billing-old"], pods["billing-new"]]
    with_old = forged(space.name, old_ring)
    known_key = forged(space.name, new_ring, to="shipping")  # the new key verifies: refused for its address

    async def old_key_refused_everywhere() -> list[list[tuple[str, str]]] | None:
        answers = [await deliver(space, pod, [with_old, known_key]) for pod in billings]
        return answers if all(a[0][0] == "OUTCOME_RETRY_LATER" for a in answers) else None

    answers = await eventually(old_key_refused_everywhere, PROPAGATION + 10)
    assert answers, "a billing sidecar still accepts the retired key"
    for (old, known), pod in zip(answers, billings, strict=True):
        where = pod["metadata"]["name"]
        assert old[1].startswith(f"unknown-key: signed with unknown key '{old_id}"), (where, old)
        assert known[0] == "OUTCOME_REJECTED", (where, known)
        assert known[1].startswith("wrong-destination"), (where, known)

    accepted = await numbers(pods["orders-old"], ACCEPTED) | await numbers(pods["orders-new"], ACCEPTED)

    async def all_arrived() -> bool:
        return accepted <= await invoiced()

    await eventually(all_arrived, 60, interval=1.0)
    lost = accepted - await invoiced()
    before = {n for n in accepted if n <= 100000}
    print(f"{len(accepted)} accepted ({len(before)} by the old sender), {len(accepted) - len(lost)} invoiced")
    assert not lost, f"{len(lost)} of {len(accepted)} accepted orders never invoiced, e.g. {sorted(lost)[:5]}"
    assert len(before) >= 20
    assert len(accepted - before) >= 10
    for name, pod in pods.items():
        async with space.sidecar(pod) as address, AsyncClient(address) as client:
            assert (await client.stats()).poisoned == 0, name
            assert await client.poisoned() == [], name
