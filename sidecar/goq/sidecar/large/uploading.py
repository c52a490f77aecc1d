"""Taking a large payload from the application as a stream: stored as it arrives (GridFS or the spill
area), its HMAC computed on the way, then the envelope that describes it signed and kept for delivery.

The size limit (the GoQueue's ``maxMessageSize``) is checked against a declared size before any byte
is stored, and against the bytes counted as they arrive for a stream of unknown length (then what was
stored is dropped).
"""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from goq.errors import ConfigError
from goq.identity import Address
from goq.messages import LargeRef, Message, new_message_id, validate_headers, validate_message_id
from goq.queue_spec import MESSAGE_SIZE_MAX, GoQueueSpec
from goq.sidecar.domain.errors import PayloadTooLargeError
from goq.sidecar.domain.records import Outgoing
from goq.sidecar.large.bodies import BodyStore, body_name
from goq.sidecar.large.macs import sending_mac
from goq.sidecar.large.progress import LargeProgress
from goq.sidecar.ports.stores import StoreUnavailableError
from goq.signing import Keyring


@dataclass
class LargeSend:
    """What the application asks to send, without the payload (which streams)."""

    to: str
    persistent: bool = True
    headers: dict[str, str] | None = None
    id: str | None = None
    size: int | None = None
    """The payload's length if the application declared it."""


def limit_error(size: int, limit: int, *, declared: bool) -> PayloadTooLargeError:
    what = f"is {size}" if declared else f"is over {limit}"
    return PayloadTooLargeError(
        f"payload {what} bytes; the limit is {limit} bytes (the GoQueue's maxMessageSize, at most "
        f"{MESSAGE_SIZE_MAX}); nothing was stored"
    )


class Uploader:
    """Turns an application's stream into a stored body and a signed envelope ready for delivery."""

    def __init__(
        self,
        me: Address,
        keyring: Callable[[], Keyring],
        spec: Callable[[], GoQueueSpec],
        bodies: dict[bool, BodyStore | None],
        progress: LargeProgress,
        chunk_size: int,
        clock: Callable[[], float],
    ) -> None:
        self.me = me
        self.keyring = keyring
        self.spec = spec
        self.bodies = bodies
        self.progress = progress
        self.chunk_size = chunk_size
        self.clock = clock

    def check(self, request: LargeSend) -> tuple[Address, str, dict[str, str]]:
        """Refuse a bad request before anything is read or stored: destination, id, headers, size."""
        destination = Address.parse(request.to).resolved(self.me.namespace or "default")
        message_id = validate_message_id(request.id) if request.id else new_message_id()
        headers = validate_headers(request.headers)
        limit = min(self.spec().max_message_size, MESSAGE_SIZE_MAX)
        if request.size is not None and request.size > limit:
            raise limit_error(request.size, limit, declared=True)
        if self.bodies[request.persistent] is None:
            raise StoreUnavailableError("persistent messages need MongoDB (GOQ_MONGODB_URI); send it transient")
        return destination, message_id, headers

    async def upload(self, request: LargeSend, data: AsyncIterator[bytes]) -> Outgoing:
        """Store the streamed payload and return the signed envelope describing it."""
        destination, message_id, headers = self.check(request)
        store = self.bodies[request.persistent]
        assert store is not None
        limit = min(self.spec().max_message_size, MESSAGE_SIZE_MAX)
        keyring = self.keyring()
        key_id, mac = sending_mac(keyring, destination.namespace)  # no key for it yet: refused, try again later
        writer = await store.writer(body_name(str(self.me), "out", message_id), self.chunk_size, resume=False)
        pending = bytearray()
        size = 0
        try:
            async for piece in data:
                size += len(piece)
                if size > limit:
                    raise limit_error(size, limit, declared=False)
                mac.update(piece)
                self.progress.bytes_uploaded += len(piece)
                pending += piece
                while len(pending) >= self.chunk_size:
                    await writer.write(bytes(pending[: self.chunk_size]))
                    del pending[: self.chunk_size]
            if request.size is not None and size != request.size:
                raise ConfigError(f"the payload has {size} bytes, not the {request.size} declared")
            if pending:
                await writer.write(bytes(pending))
            await writer.finish()
        except BaseException:
            await writer.discard()
            raise
        now = self.clock()
        message = Message(
            id=message_id,
            source=self.me,
            destination=destination,
            created_at_ms=int(now * 1000),
            payload=b"",
            persistent=request.persistent,
            headers=headers,
            large=LargeRef(size=size, mac=mac.digest(), key_id=key_id, chunk_size=self.chunk_size),
        )
        body = message.encode()
        signer, signature = keyring.sign(body, destination.namespace)
        return Outgoing(
            id=message_id,
            destination=destination,
            body=body,
            key_id=signer,
            signature=signature,
            persistent=request.persistent,
            created_at=now,
        )
