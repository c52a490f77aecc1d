"""goqctl's own failures, each with its exit code (see ``goq.cli.goqctl``)."""

from goq.errors import ConfigError, TemporaryError

EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_PIPE = 1, 2, 3, 141


class UsageError(ConfigError):
    """Arguments that parse but do not make sense together (exit 2)."""


class TargetError(TemporaryError):
    """The sidecar to talk to could not be found or reached through the cluster (exit 3)."""
