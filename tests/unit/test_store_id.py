"""The store id a sidecar compares with its peers' (issue 21: one durable copy per message): none
without a store, none before the store is opened, so nothing is ever taken as "the same store" by default."""

from pymongo import AsyncMongoClient

from goq.sidecar.adapters.stores.absent import NoCustody
from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.ports.stores import Custody


def test_a_sidecar_without_a_store_names_no_store_id() -> None:
    custody: Custody = NoCustody()
    assert custody.store_id is None


async def test_a_mongodb_store_names_no_id_before_it_is_opened() -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient("mongodb://127.0.0.1:1/", connect=False)
    try:
        custody: Custody = MongoStore(client, "goq", "billing.default", "billing-0", dedupe_window=3600)
        assert custody.store_id is None
    finally:
        await client.close()
