"""``goq-sidecar``: the queue-manager sidecar process. Configured by ``GOQ_*`` variables (docs/sidecar.md)."""

import asyncio
import logging
import sys

from goq import logs
from goq.cli.common import parser
from goq.errors import GoQError
from goq.sidecar.grpc_core import choose_io_engine
from goq.sidecar.settings import SidecarSettings


def main(argv: list[str] | None = None) -> int:
    """Run the sidecar until SIGTERM; exit 2 with a one-line reason on bad settings."""
    parser(
        "goq-sidecar", "The GoQ queue-manager sidecar, configured by GOQ_* variables (see docs/sidecar.md)."
    ).parse_args(argv)
    try:
        settings = SidecarSettings.from_env()
    except GoQError as exc:
        print(f"goq-sidecar: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if settings.unknown:
        logging.getLogger("goq.sidecar").warning(
            "ignoring unknown setting(s) %s (typos?); docs/sidecar.md lists the known ones", ", ".join(settings.unknown)
        )
    choose_io_engine()
    from goq.sidecar.runtime import run  # loads grpcio: after its I/O engine is chosen

    try:
        asyncio.run(run(settings))
    except GoQError as exc:
        logging.getLogger("goq.sidecar").error("%s", exc)
        return 1
    return 0
