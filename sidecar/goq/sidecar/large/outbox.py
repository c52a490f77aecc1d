"""Large messages accepted from the application and not yet delivered: their envelopes (the bodies are
in a ``BodyStore``). Persistent ones are kept in the ``large_outbox`` collection, transient ones in memory."""

import contextlib
from typing import Any, Protocol

from pymongo import WriteConcern
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from goq.identity import Address
from goq.sidecar.domain.records import Outgoing
from goq.sidecar.ports.stores import StoreUnavailableError

COLLECTION = "large_outbox"


class LargeOutbox(Protocol):
    async def add(self, item: Outgoing) -> bool:
        """Keep ``item``; False if its id was kept already (a repeated send)."""
        ...

    async def failed(self, item: Outgoing) -> None: ...

    async def remove(self, message_id: str) -> None: ...

    async def recover(self) -> list[Outgoing]: ...


class MemoryLargeOutbox:
    """Transient: nothing to write; the sender holds the records."""

    async def add(self, item: Outgoing) -> bool:
        return True

    async def failed(self, item: Outgoing) -> None:
        return None

    async def remove(self, message_id: str) -> None:
        return None

    async def recover(self) -> list[Outgoing]:
        return []


class MongoLargeOutbox:
    """Persistent: one document per message, majority-written before the application hears "queued"."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], owner: str) -> None:
        self.owner = owner
        self.collection = db.get_collection(COLLECTION, write_concern=WriteConcern(w="majority"))

    def _id(self, message_id: str) -> str:
        return f"{self.owner}|{message_id}"

    async def add(self, item: Outgoing) -> bool:
        document = {
            "_id": self._id(item.id),
            "owner": self.owner,
            "id": item.id,
            "destination": str(item.destination),
            "body": item.body,
            "key_id": item.key_id,
            "signature": item.signature,
            "created_at": item.created_at,
            "failed_attempts": 0,
            "next_at": 0.0,
        }
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            return False
        except PyMongoError as exc:
            raise StoreUnavailableError(f"MongoDB did not store the large message: {exc}") from exc
        return True

    async def failed(self, item: Outgoing) -> None:
        update = {"$set": {"failed_attempts": item.failed_attempts, "next_at": item.next_at}}
        # A lost count only means one more attempt after a restart.
        with contextlib.suppress(PyMongoError):
            await self.collection.update_one({"_id": self._id(item.id)}, update)

    async def remove(self, message_id: str) -> None:
        await self.collection.delete_one({"_id": self._id(message_id)})

    async def recover(self) -> list[Outgoing]:
        return [
            Outgoing(
                id=doc["id"],
                destination=Address.parse(doc["destination"]),
                body=bytes(doc["body"]),
                key_id=doc["key_id"],
                signature=bytes(doc["signature"]),
                persistent=True,
                created_at=doc["created_at"],
                failed_attempts=doc["failed_attempts"],
                next_at=doc["next_at"],
            )
            async for doc in self.collection.find({"owner": self.owner})
        ]
