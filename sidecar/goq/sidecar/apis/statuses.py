"""What the application is told when the sidecar refuses: one table from our exception types to the
gRPC status, the HTTP status and the REST ``error.code``, read by both application APIs.

An error takes the entry of its nearest class in the table (its own, else its closest base), so both
APIs refuse the same things for the same reasons and a new exception type answers as its base does
until it is given an entry. ``docs/api.md`` ("Errors") documents the table; ``tests/unit/test_statuses.py``
holds the two to each other.
"""

from dataclasses import dataclass
from typing import Final

import grpc

from goq.errors import ConfigError, GoQError, TemporaryError
from goq.sidecar.domain.errors import NotFoundError, PayloadTooLargeError, QueueFullError


@dataclass(frozen=True, slots=True)
class Status:
    """One refusal as each API says it."""

    grpc: grpc.StatusCode
    http: int
    code: str
    """The REST answer's ``error.code``."""


STATUSES: Final[dict[type[GoQError], Status]] = {
    ConfigError: Status(grpc.StatusCode.INVALID_ARGUMENT, 400, "bad_request"),
    # Bad input too, but HTTP has a status of its own for it; gRPC does not.
    PayloadTooLargeError: Status(grpc.StatusCode.INVALID_ARGUMENT, 413, "payload_too_large"),
    NotFoundError: Status(grpc.StatusCode.NOT_FOUND, 404, "not_found"),
    # Backpressure: retry later. A temporary failure, told apart so that a client can back off.
    QueueFullError: Status(grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "queue_full"),
    # Storage or the poison sink out of reach: try again later; no bad input.
    TemporaryError: Status(grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
    # Anything else (a PermanentError reaching an API) is a fault of the sidecar, not of the request.
    GoQError: Status(grpc.StatusCode.INTERNAL, 500, "internal"),
}

HTTP_ONLY: Final[dict[int, str]] = {405: "method_not_allowed", 408: "request_timeout", 417: "bad_request"}
"""The ``error.code`` of refusals by the HTTP server itself (``http_protocol.HttpError``: a wrong method, a body
that stalled, an ``Expect`` other than ``100-continue``), which no exception of ours and no gRPC call has.
Its 400 (a body cut short) and 404 (no such endpoint) share their codes with the table's."""

ERROR_CODES: Final[dict[int, str]] = {status.http: status.code for status in STATUSES.values()} | HTTP_ONLY
"""The ``error.code`` of each HTTP status the REST API refuses with."""


def status_of(error: GoQError) -> Status:
    """How both APIs answer ``error``: the entry of its nearest class in ``STATUSES``."""
    for base in type(error).__mro__:
        status = STATUSES.get(base)
        if status is not None:
            return status
    raise AssertionError(f"{type(error).__name__} is no GoQError")  # unreachable: GoQError is in the table


def code_of_http(status: int) -> str:
    """The ``error.code`` of an HTTP refusal; a status in no table takes the generic code of its class."""
    return ERROR_CODES.get(status, "bad_request" if status < 500 else "internal")
