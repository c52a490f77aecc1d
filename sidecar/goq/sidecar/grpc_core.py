"""Which of gRPC core's I/O engines the sidecar runs on, chosen before grpcio is loaded.

grpcio's EventEngine does socket I/O on threads of its own and hands each completion to the
completion-queue poller thread, which wakes the event loop; the older iomgr engine polls the sockets
on the poller thread itself, one hand-off fewer per event. A sidecar handles a few gRPC events per
message, so at low rates, where every message is an RPC event of its own, that hand-off is much of
its CPU: at a fixed 1,000 msg/s the iomgr engine took 18% less CPU per message in each sidecar and cut
the transient p99 (docs/benchmarks.md). A deployer's own ``GRPC_EXPERIMENTS`` wins.
"""

import os
import sys
from collections.abc import MutableMapping
from typing import Final

from goq.errors import ConfigError

IOMGR: Final = ",".join(
    f"-{name}"
    for name in (
        "event_engine_client",
        "event_engine_listener",
        "event_engine_for_all_other_endpoints",
        "event_engine_callback_cq",
    )
)
"""``GRPC_EXPERIMENTS`` that turn EventEngine's rollout off: gRPC core's iomgr engine does the I/O."""


def choose_io_engine(environ: MutableMapping[str, str] = os.environ) -> None:
    """Ask for the iomgr engine unless ``GRPC_EXPERIMENTS`` is set; grpcio reads it once, when loaded."""
    if "grpc" in sys.modules and "GRPC_EXPERIMENTS" not in environ:
        raise ConfigError("gRPC's I/O engine must be chosen before grpcio is imported")
    environ.setdefault("GRPC_EXPERIMENTS", IOMGR)
