"""Finding and creating the poison sink a GoQueue names, by entry point."""

import logging
from typing import Final

from goq.queue_spec import SinkSpec
from goq.sidecar.adapters.plugins.loading import load_plugin
from goq.sidecar.adapters.poison.transient_only import TransientOnlySink
from goq.sidecar.ports.poison import PoisonSink, SinkContext

GROUP: Final = "goq.poison_sinks"
FALLBACK: Final = SinkSpec("log")
"""The sink of a sidecar without MongoDB whose GoQueue names ``mongodb`` (the default)."""

log = logging.getLogger("goq.sidecar.poison")


def load_poison_sink(spec: SinkSpec, context: SinkContext) -> PoisonSink:
    """Create the sink ``spec.type``; fail at start with a message naming it if it is missing or broken.

    Why the fallback: a sidecar without MongoDB runs transient-only (persistent sends are refused), so it
    only ever poisons transient messages, which a pod's death may lose anyway; refusing to start because
    the default sink needs MongoDB broke that promise. The start says, once, that they are only logged.
    Without MongoDB a persistent message is never poisoned into the log, named or not (``TransientOnlySink``).
    """
    if spec.type == "mongodb" and context.mongo is None:
        log.warning(
            "no MongoDB (GOQ_MONGODB_URI is not set): poisoned messages are only logged (id, reason, peer, "
            "no payload) by the poison sink 'log' instead of 'mongodb'; to keep them whole, set the GoQueue's "
            "poisonQueue to a 'file' or 'http' sink"
        )
        spec = FALLBACK
    sink = _load(spec, context)
    return TransientOnlySink(sink) if spec.type == FALLBACK.type and context.mongo is None else sink


def _load(spec: SinkSpec, context: SinkContext) -> PoisonSink:
    sink: PoisonSink = load_plugin(
        GROUP, "poison sink", spec.type, SinkContext(context.owner, dict(spec.options), context.mongo, context.database)
    )
    return sink
