"""The real MongoDB from the session fixture behaves as GoQ's stores will rely on."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError
from pymongo.read_concern import ReadConcern

from goq.devenv.mongo import JOURNAL_COMMIT_INTERVAL_MS, SNAPSHOT_HISTORY_SECONDS, MongoServer

Doc = dict[str, object]


@pytest.fixture
async def collection(mongo_uri: str, request: pytest.FixtureRequest) -> AsyncIterator[AsyncCollection[Doc]]:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_uri)
    coll = client["goq_test"].get_collection(request.node.name, write_concern=WriteConcern(w="majority"))
    try:
        yield coll
    finally:
        await coll.drop()
        await client.close()


async def test_binary_payload_round_trips_byte_for_byte(collection: AsyncCollection[Doc]) -> None:
    payload = bytes(range(256)) * 64 + os.urandom(1024)
    await collection.insert_one({"_id": "m1", "payload": payload})
    found = await collection.find_one({"_id": "m1"})
    assert found is not None
    assert isinstance(found["payload"], bytes)
    assert found["payload"] == payload


async def test_unique_index_refuses_a_duplicate_message_id(collection: AsyncCollection[Doc]) -> None:
    await collection.create_index([("identity", 1), ("msg_id", 1)], unique=True)
    await collection.insert_one({"identity": "orders", "msg_id": "abc"})
    await collection.insert_one({"identity": "billing", "msg_id": "abc"})  # another identity: allowed
    with pytest.raises(DuplicateKeyError):
        await collection.insert_one({"identity": "orders", "msg_id": "abc"})
    assert await collection.count_documents({}) == 2


async def test_majority_write_is_visible_to_a_majority_read(collection: AsyncCollection[Doc]) -> None:
    result = await collection.insert_many([{"n": i} for i in range(1000)])
    assert result.acknowledged
    majority = collection.with_options(read_concern=ReadConcern("majority"))
    assert await majority.count_documents({}) == 1000


async def test_server_restarted_on_its_data_keeps_what_was_written(tmp_path: Path) -> None:
    server = MongoServer(tmp_path)
    server.start()
    try:
        async with AsyncMongoClient[Doc](server.uri) as client:
            await client.db.c.insert_one({"_id": 1, "kept": True})
        server.stop()
        assert server.process is None
        server.start()
        async with AsyncMongoClient[Doc](server.uri) as client:
            assert await client.db.c.find_one({"_id": 1}) == {"_id": 1, "kept": True}
    finally:
        server.stop()


async def test_the_local_mongod_flushes_its_journal_often_enough_for_low_latency(mongo_uri: str) -> None:
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_uri)
    try:
        options = await client.admin.command("getCmdLineOpts")
    finally:
        await client.close()
    assert options["parsed"]["storage"]["journal"]["commitIntervalMs"] == JOURNAL_COMMIT_INTERVAL_MS == 10


async def test_the_local_mongod_keeps_no_old_versions_of_documents_for_snapshot_reads(mongo_uri: str) -> None:
    """GoQ reads nothing at a past time; a window would write every deleted or updated message body again."""
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_uri)
    try:
        window = await client.admin.command({"getParameter": 1, "minSnapshotHistoryWindowInSeconds": 1})
    finally:
        await client.close()
    assert window["minSnapshotHistoryWindowInSeconds"] == SNAPSHOT_HISTORY_SECONDS == 0
