"""Errors the sidecar's APIs turn into status codes (HTTP and gRPC)."""

from goq.errors import ConfigError, GoQError, TemporaryError


class QueueFullError(TemporaryError):
    """The send queue is at its limit and the overflow policy is ``reject``: back off and retry."""


class PayloadTooLargeError(ConfigError):
    """A payload over the configured size limit; nothing was stored."""


class NotFoundError(GoQError):
    """No such message (not leased, or not in the poison queue)."""
