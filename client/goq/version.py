"""GoQ's version: the installed ``goq`` distribution's (the client, on which every component depends).

``goq`` is a namespace package split over several distributions (``goq``, ``goq-sidecar``, ``goq-operator``,
``goq-webhook``, ``goq-devenv``: docs/architecture.md), so it has no ``__init__`` to hold this.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("goq")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
