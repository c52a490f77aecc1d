"""``goq-sidecar``: the queue-manager sidecar process. Configured by ``GOQ_*`` variables (docs/sidecar.md)."""

import asyncio
import logging
import sys
from collections.abc import Callable

from goq import logs
from goq.cli.common import parser
from goq.errors import ConfigError, GoQError
from goq.sidecar.grpc_core import choose_io_engine
from goq.sidecar.settings import SidecarSettings

EventLoopFactory = Callable[[], asyncio.AbstractEventLoop]


def event_loop_factory(choice: str) -> EventLoopFactory | None:
    """The event loop the sidecar runs on: uvloop's (``uvloop``, or ``auto`` when it is installed) or asyncio's
    own (None).

    Why uvloop: around each per-message call the sidecar's own I/O (MongoDB's driver, the REST server) goes
    through the event loop's transports, which uvloop runs in C: persistent REST and unary sends took less
    CPU per message (docs/benchmarks.md), by 0-16 %. ``asyncio`` is the default until a full run of the test
    suite and the fault runs on uvloop has shown it changes nothing else; ``auto`` falls back to it where
    uvloop is not installed (the extra ``goq-sidecar[uvloop]``)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        if choice == "auto":
            return None
        raise ConfigError(
            f"GOQ_EVENT_LOOP=uvloop, but uvloop cannot be imported ({exc}); install it or choose asyncio"
        ) from None
    factory: EventLoopFactory = uvloop.new_event_loop
    return factory


def main(argv: list[str] | None = None) -> int:
    """Run the sidecar until SIGTERM; exit 2 with a one-line reason on bad settings."""
    parser(
        "goq-sidecar", "The GoQ queue-manager sidecar, configured by GOQ_* variables (see docs/sidecar.md)."
    ).parse_args(argv)
    try:
        settings = SidecarSettings.from_env()
        loop_factory = event_loop_factory(settings.event_loop)
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
        with asyncio.Runner(loop_factory=loop_factory) as runner:  # asyncio.run, on the chosen loop
            runner.run(run(settings))
    except GoQError as exc:
        logging.getLogger("goq.sidecar").error("%s", exc)
        return 1
    return 0
