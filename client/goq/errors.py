"""The root of GoQ's exception tree.

    GoQError
    ├── ConfigError         a setting, field or argument is invalid; says what is allowed
    ├── TemporaryError      may succeed when tried again (a server down, a timeout)
    └── PermanentError      will fail the same way every time

Lower-level errors (PyMongo, grpc, aiohttp, the Kubernetes client) are translated into these at one
boundary per component and chained with ``raise ... from exc``.
"""


class GoQError(Exception):
    """Anything GoQ raises on purpose."""


class ConfigError(GoQError):
    """A setting, CR field, annotation or argument is invalid."""


class TemporaryError(GoQError):
    """A failure that may pass: the caller may retry, after ``delay`` seconds if given."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(GoQError):
    """A failure that retrying will not fix."""
