"""What a sidecar can refuse, as exceptions; gRPC status codes are translated here and nowhere else."""

import grpc

from goq.errors import GoQError


class ClientError(GoQError):
    """The sidecar refused or could not be reached; ``code`` is the gRPC status name."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidMessageError(ClientError):
    """Bad destination, payload over the limit, bad header or id (INVALID_ARGUMENT)."""


class QueueFullError(ClientError):
    """The send queue is full and its overflow policy is ``reject``: back off and retry (RESOURCE_EXHAUSTED)."""


class UnavailableError(ClientError):
    """The sidecar is unreachable, or cannot make a persistent message durable now (UNAVAILABLE)."""


class MessageNotFoundError(ClientError):
    """No such leased message (NOT_FOUND)."""


_BY_CODE: dict[str, type[ClientError]] = {
    "INVALID_ARGUMENT": InvalidMessageError,
    "RESOURCE_EXHAUSTED": QueueFullError,
    "UNAVAILABLE": UnavailableError,
    "NOT_FOUND": MessageNotFoundError,
}


def error_for(code: str, message: str) -> ClientError:
    """The exception for a status name and message (also used for per-message errors of a batch)."""
    return _BY_CODE.get(code, ClientError)(message, code)


def translate(exc: grpc.RpcError) -> ClientError:
    """The exception for a failed call."""
    code_of, details_of = getattr(exc, "code", None), getattr(exc, "details", None)
    code = code_of().name if callable(code_of) else "UNKNOWN"
    details = details_of() if callable(details_of) else str(exc)
    return error_for(code, str(details or code))
