"""Each MongoDB database GoQ stores into has one id (``meta``), written by the first sidecar that opens it: every
store opened on that database reads the same id, whatever its identity or instance, after restarts and when
many open a new database at once; another database has another id. Sidecars compare these ids to know they
share one store (issue 21: one durable copy per message)."""

import asyncio
import uuid

import pytest
from pymongo import AsyncMongoClient

from goq.sidecar.adapters.stores.mongo import MongoStore
from goq.sidecar.ports.stores import StoreUnavailableError

from .conftest import Doc, OpenStore


async def opened(client: AsyncMongoClient[Doc], database: str, owner: str, instance: str) -> MongoStore:
    store = MongoStore(client, database, owner, instance, dedupe_window=3600)
    await store.open()
    return store


async def test_stores_of_different_identities_on_one_database_read_the_same_id(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    billing = await open_store("billing-0")
    orders = await opened(mongo_client, database, "orders.default", "orders-0")
    assert billing.store_id
    assert orders.store_id == billing.store_id
    assert await mongo_client[database]["meta"].count_documents({}) == 1


async def test_another_database_has_another_id(
    open_store: OpenStore, mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    here = await open_store()
    elsewhere = await opened(mongo_client, f"{database}_other", "billing.default", "billing-0")
    try:
        assert elsewhere.store_id
        assert elsewhere.store_id != here.store_id
    finally:
        await mongo_client.drop_database(f"{database}_other")


async def test_a_restarted_sidecar_reads_the_id_it_read_before(open_store: OpenStore) -> None:
    first = await open_store("billing-0")
    restarted = await open_store("billing-0")
    assert restarted.store_id == first.store_id


async def test_sidecars_opening_a_new_database_at_once_end_with_one_id(mongo_uri: str, database: str) -> None:
    # A client each, as separate sidecars have: their upserts race on the server, not in one connection pool.
    clients = [AsyncMongoClient[Doc](mongo_uri) for _ in range(8)]
    try:
        stores = await asyncio.gather(
            *(opened(client, database, f"app{n}.default", "app-0") for n, client in enumerate(clients))
        )
        ids = {store.store_id for store in stores}
        assert len(ids) == 1, ids
        assert await clients[0][database]["meta"].count_documents({}) == 1
        later = await opened(clients[0], database, "app0.default", "app-1")
        assert {later.store_id} == ids  # the race's winner stays the id
    finally:
        for client in clients:
            await client.close()


async def test_a_meta_document_without_an_id_is_refused_with_what_to_do(
    mongo_client: AsyncMongoClient[Doc], database: str
) -> None:
    await mongo_client[database]["meta"].insert_one({"_id": "store", "note": "written by hand"})
    with pytest.raises(StoreUnavailableError, match=r"without a store id .*remove it to let GoQ write one"):
        await opened(mongo_client, database, "billing.default", "billing-0")


async def test_the_id_is_a_fresh_random_one_not_derived_from_the_database_name(
    mongo_client: AsyncMongoClient[Doc],
) -> None:
    # A dropped and re-created database (or one on another replica set with the same name) is another store.
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        before = (await opened(mongo_client, name, "billing.default", "billing-0")).store_id
        await mongo_client.drop_database(name)
        after = (await opened(mongo_client, name, "billing.default", "billing-0")).store_id
        assert before != after
    finally:
        await mongo_client.drop_database(name)
