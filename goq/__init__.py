"""GoQ: reliable application-to-application messaging for Kubernetes.

The ``goq`` package holds what several components share (errors, and later the message model, signing
and configuration). The components themselves are ``goq.operator``, ``goq.sidecar`` and
``goq.webhook``; they never import each other. ``goq.cli`` wires them into processes, and
``goq.devenv`` starts real servers for development and tests; product code never imports it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("goq")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
