"""Finding and creating the poison sink a GoQueue names, by entry point."""

from typing import Final

from goq.queue_spec import SinkSpec
from goq.sidecar.plugins.loading import load_plugin
from goq.sidecar.poison.base import PoisonSink, SinkContext

GROUP: Final = "goq.poison_sinks"


def load_poison_sink(spec: SinkSpec, context: SinkContext) -> PoisonSink:
    """Create the sink ``spec.type``; fail at start with a message naming it if it is missing or broken."""
    sink: PoisonSink = load_plugin(
        GROUP, "poison sink", spec.type, SinkContext(context.owner, dict(spec.options), context.mongo, context.database)
    )
    return sink
