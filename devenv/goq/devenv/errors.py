"""Errors of the local development servers."""

from goq.errors import GoQError


class DevEnvError(GoQError):
    """A local server could not be found, started or stopped; the message says why and what to do."""
