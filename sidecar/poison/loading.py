"""Finding and creating the poison sink a GoQueue names, by entry point."""

from importlib.metadata import entry_points
from typing import Final

from goq.errors import ConfigError
from goq.queue_spec import SinkSpec
from goq.sidecar.poison.base import PoisonSink, SinkContext

GROUP: Final = "goq.poison_sinks"


def load_poison_sink(spec: SinkSpec, context: SinkContext) -> PoisonSink:
    """Create the sink ``spec.type``; fail at start with a message naming it if it is missing or broken."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    entry = found.get(spec.type)
    if entry is None:
        raise ConfigError(
            f"poison sink {spec.type!r} is not installed; available: {', '.join(sorted(found)) or 'none'} "
            f"(plug-ins register under the entry point group {GROUP!r})"
        )
    try:
        factory = entry.load()
    except Exception as exc:
        raise ConfigError(f"poison sink {spec.type!r} ({entry.value}) failed to load: {exc}") from exc
    sink: PoisonSink = factory(SinkContext(context.owner, dict(spec.options), context.mongo, context.database))
    return sink
