"""A signed envelope replayed after the de-duplication window is refused (``expired``), never handed to the
application a second time; and a sidecar refuses to start with a retry policy that outlives its window."""

import asyncio
import datetime
import json
import time
from collections.abc import Callable

import pytest
from pymongo import AsyncMongoClient

from goq.api.v1 import envelope_pb2, peer_pb2
from goq.devenv.errors import DevEnvError
from goq.devenv.sidecars import SidecarProcess
from goq.freshness import CLOCK_SKEW, remembered_for
from goq.identity import Address
from goq.messages import Message, new_message_id
from goq.signing import Keyring

from .conftest import KEY, App, Doc, OpenStore
from .test_metrics import scrape
from .test_mongo_inbox import incoming, settled
from .test_peer_security import deliver

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]
WINDOW = 3.0


def signed_at(created: float, payload: bytes) -> envelope_pb2.SignedEnvelope:
    """An envelope from orders to billing created at ``created``, signed as the sidecar signs."""
    message = Message(
        id=new_message_id(),
        source=Address("orders", "default"),
        destination=Address("billing", "default"),
        created_at_ms=round(created * 1000),
        payload=payload,
    )
    body = message.encode()
    key_id, signature = Keyring({"k1": KEY}, "k1").sign(body)
    return envelope_pb2.SignedEnvelope(body=body, key_id=key_id, signature=signature, attempt=1)


def outcome(result: peer_pb2.MessageResult) -> tuple[str, str]:
    return peer_pb2.Outcome.Name(result.outcome), result.reason.split(":")[0]


async def test_an_envelope_replayed_after_the_window_is_refused_as_expired_and_delivered_once(
    sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", GOQ_DEDUPE_WINDOW=f"{WINDOW:g}s")
    orders, billing = apps(group["orders"]), apps(group["billing"])
    # A normal send still goes through with the short window (the default maxAge is cut to it).
    assert (await orders.send("billing", [b"fresh"]))[0].WhichOneof("result") == "accepted"
    assert [m.payload for m in await billing.receive(1, within=15)] == [b"fresh"]
    # From a sender whose clock runs the full allowance behind: accepted now, expired WINDOW seconds later.
    created = time.time() - CLOCK_SKEW - 1.0
    envelope = signed_at(created, b"pay once")

    (first,) = await deliver(group["billing"], [envelope])
    assert [outcome(r) for r in first] == [("OUTCOME_ACCEPTED", "")]
    assert [m.payload for m in await billing.receive(1, within=10)] == [b"pay once"]  # and acknowledged
    (within_window,) = await deliver(group["billing"], [envelope])
    assert [outcome(r) for r in within_window] == [("OUTCOME_DUPLICATE", "")]

    await asyncio.sleep(max(0.0, created + CLOCK_SKEW + WINDOW + 0.5 - time.time()))
    (replayed,) = await deliver(group["billing"], [envelope])

    assert [outcome(r) for r in replayed] == [("OUTCOME_REJECTED", "expired")]
    assert "de-duplication window (3s)" in replayed[0].reason
    assert [m.payload for m in await billing.quiet(2.0)] == []
    refused = {dict(labels)["reason"]: v for (name, labels), v in scrape(group["billing"]).items() if "refused" in name}
    assert refused == {"expired": 1}


async def test_an_envelope_from_beyond_the_skew_allowance_ahead_is_refused(sidecars: Sidecars, apps: Apps) -> None:
    billing = sidecars("billing")["billing"]
    app = apps(billing)

    (results,) = await deliver(billing, [signed_at(time.time() + CLOCK_SKEW + 60, b"from the future")])

    assert [outcome(r) for r in results] == [("OUTCOME_REJECTED", "clock-skew")]
    assert [m.payload for m in await app.quiet(1.0)] == []


def test_a_sidecar_whose_retry_policy_outlives_the_window_refuses_to_start(sidecars: Sidecars) -> None:
    policy = json.dumps({"maxAge": "1h"})
    billing = sidecars("billing", start=False, GOQ_DEDUPE_WINDOW="30m", GOQ_RETRY_POLICY=policy)["billing"]

    with pytest.raises(DevEnvError):
        billing.start(timeout=20)

    assert "GOQ_RETRY_POLICY maxAge (1h) exceeds the de-duplication window (30m, GOQ_DEDUPE_WINDOW)" in billing.log()


async def test_a_tombstone_outlives_the_window_by_twice_the_skew_allowance(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    store = await open_store()  # dedupe_window 1h
    message = incoming(1)
    await store.inbox.add([message])
    before = time.time()
    store.inbox.acknowledge([message.key])
    await settled(store)

    (doc,) = await mongo_client[database]["inbox"].find({}).to_list(None)

    expires = doc["t"].replace(tzinfo=datetime.UTC).timestamp()
    assert remembered_for(3600) == 3600 + 2 * CLOCK_SKEW
    assert before + remembered_for(3600) - 1 <= expires <= time.time() + remembered_for(3600) + 1
