"""The Python client of a GoQ sidecar's application API (gRPC, 127.0.0.1:7701).

    async with AsyncClient() as goq:
        receipt = await goq.send("billing", b"invoice 42")
        async for message in goq.receive():
            handle(message.payload)
            await goq.ack(message.id)

A consumer that acknowledges often does so on one stream, cheaper for the sidecar than a call each time:

    async with AsyncClient() as goq, goq.acknowledger() as acks:
        async for message in goq.receive(max_in_flight=500):
            handle(message.payload)
            await acks.ack(message.id)

``Client`` offers the same calls, with the same parameters, without asyncio (a unit test holds the two
together). Errors are ``goq.client.errors`` types. A guide with examples: ``docs/client.md``.
"""

from goq.client.asynchronous import AsyncClient
from goq.client.errors import ClientError, InvalidMessageError, MessageNotFoundError, QueueFullError, UnavailableError
from goq.client.models import Outgoing, Poisoned, Receipt, Received, Stats
from goq.client.synchronous import Client

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "InvalidMessageError",
    "MessageNotFoundError",
    "Outgoing",
    "Poisoned",
    "QueueFullError",
    "Receipt",
    "Received",
    "Stats",
    "UnavailableError",
]
