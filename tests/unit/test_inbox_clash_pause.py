"""A received group whose insert clashed with a document the majority read cannot see yet (a concurrent
write of the same keys, not majority-committed) is looked at again after a pause, not at once: three
looks in a row without a pause took microseconds, less than a replica set needs to commit."""

import time
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from goq.identity import Address
from goq.messages import Message
from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.adapters.stores.mongo.inbox import CLASH_PAUSE, CLASH_TRIES, MongoInbox
from goq.sidecar.domain.records import Incoming, inbound_key
from goq.sidecar.ports.stores import StoreUnavailableError

ORDERS = Address.parse("orders.default")
BILLING = Address.parse("billing.default")
Doc = dict[str, Any]


def incoming(message_id: str) -> Incoming:
    message = Message(id=message_id, source=ORDERS, destination=BILLING, created_at_ms=0, payload=b"x")
    body = message.encode()
    return Incoming(inbound_key(ORDERS, message_id), message, body, "k1", b"s" * 32, received_at=time.time())


class ClashingInbox(MongoInbox):
    """Every insert clashes; the clashing document is visible to the majority read from look ``seen_at`` on."""

    def __init__(self, seen_at: int) -> None:
        client: AsyncMongoClient[Doc] = AsyncMongoClient("mongodb://127.0.0.1:9/", connect=False)
        super().__init__(MongoStore(client, "goq_unit", "billing.default", "billing-0", dedupe_window=3600), 3600)
        self.seen_at = seen_at
        self.looks: list[float] = []

    async def _insert(self, docs: list[Doc]) -> list[bool]:
        return [False] * len(docs)

    async def _holders(self, keys: list[str]) -> tuple[dict[str, tuple[str, bool]], dict[str, set[str]]]:
        self.looks.append(time.monotonic())
        if len(self.looks) < self.seen_at:
            return {}, {}
        return dict.fromkeys(keys, ("billing.default|gother", False)), {}  # consumed elsewhere: a duplicate


async def test_a_clash_not_visible_yet_is_looked_at_again_after_growing_pauses() -> None:
    inbox = ClashingInbox(seen_at=CLASH_TRIES)
    assert await inbox.add([incoming("m1")]) == [False]
    gaps = [later - earlier for earlier, later in zip(inbox.looks, inbox.looks[1:], strict=False)]
    assert len(gaps) == CLASH_TRIES - 1
    assert gaps[0] >= CLASH_PAUSE[0] * 0.9
    assert gaps[-1] >= min(CLASH_PAUSE[0] * 2 ** (CLASH_TRIES - 2), CLASH_PAUSE[1]) * 0.9


async def test_a_clash_never_seen_is_answered_retry_later_within_a_second() -> None:
    inbox = ClashingInbox(seen_at=CLASH_TRIES + 1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match="kept refusing"):
        await inbox.add([incoming("m1")])
    assert len(inbox.looks) == CLASH_TRIES
    assert time.monotonic() - started < 1.5
