"""The default poison sink: a MongoDB collection, browsable and redrivable."""

import datetime
import os
from typing import Any

from pymongo import DESCENDING, WriteConcern
from pymongo.errors import PyMongoError

from goq.errors import ConfigError
from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.ports.poison import PoisonSinkError, SinkContext
from goq.sink_options import POISON, check_sink

Doc = dict[str, Any]


class MongoPoisonSink:
    """Poisoned messages in the ``poison`` collection (option ``collection``), newest first."""

    def __init__(self, context: SinkContext) -> None:
        if context.mongo is None:
            raise ConfigError("poison sink 'mongodb' needs MongoDB: set GOQ_MONGODB_URI")
        check_sink(POISON, "mongodb", context.options)
        name = str(context.options.get("collection", "poison"))
        self._collection = context.mongo[context.database].get_collection(
            name, write_concern=WriteConcern(w="majority")
        )
        self._indexed = False

    async def put(self, records: list[PoisonRecord]) -> None:
        try:
            if not self._indexed:
                await self._collection.create_index([("o", 1), ("at", DESCENDING)], name="owner_time")
                self._indexed = True
            await self._collection.insert_many([_document(r) for r in records], ordered=False)
        except PyMongoError as exc:
            raise PoisonSinkError(f"MongoDB poison sink failed: {exc}") from exc

    async def browse(self, owner: str, limit: int = 100) -> list[PoisonRecord]:
        try:
            docs = await self._collection.find({"o": owner}).sort("at", DESCENDING).limit(limit).to_list(None)
        except PyMongoError as exc:
            raise PoisonSinkError(f"MongoDB poison sink failed: {exc}") from exc
        return [_record(d) for d in docs]

    async def find(self, owner: str, ids: list[str]) -> list[PoisonRecord]:
        try:
            docs = await self._collection.find({"o": owner, "id": {"$in": ids}}).to_list(None)
        except PyMongoError as exc:
            raise PoisonSinkError(f"MongoDB poison sink failed: {exc}") from exc
        return [_record(d) for d in docs]

    async def remove(self, owner: str, ids: list[str]) -> None:
        try:
            await self._collection.delete_many({"o": owner, "id": {"$in": ids}})
        except PyMongoError as exc:
            raise PoisonSinkError(f"MongoDB poison sink failed: {exc}") from exc

    async def close(self) -> None:
        return None


def _document(r: PoisonRecord) -> Doc:
    return {
        "_id": f"{r.owner}|{r.id}|{os.urandom(6).hex()}",
        "o": r.owner,
        "id": r.id,
        "dir": r.direction,
        "peer": r.peer,
        "reason": r.reason,
        "detail": r.detail,
        "attempts": r.attempts,
        "at": datetime.datetime.fromtimestamp(r.poisoned_at, datetime.UTC),
        "p": r.persistent,
        "b": r.body,
        "k": r.key_id,
        "s": r.signature,
        "x": r.extra,
    }


def _record(d: Doc) -> PoisonRecord:
    at: datetime.datetime = d["at"]
    return PoisonRecord(
        id=d["id"],
        owner=d["o"],
        direction=d["dir"],
        peer=d["peer"],
        reason=d["reason"],
        detail=d["detail"],
        attempts=d["attempts"],
        poisoned_at=at.replace(tzinfo=datetime.UTC).timestamp(),
        persistent=d["p"],
        body=bytes(d["b"]),
        key_id=d["k"],
        signature=bytes(d["s"]),
        extra=d.get("x", {}),
    )


def create(context: SinkContext) -> MongoPoisonSink:
    """Entry point ``mongodb`` of ``goq.poison_sinks``."""
    return MongoPoisonSink(context)
