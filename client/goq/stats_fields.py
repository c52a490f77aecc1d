"""The figures of a sidecar's ``Stats`` answer, defined once.

Each API renders this table: gRPC ``StatsResponse`` by ``name`` (the proto stays hand-written; a test checks
its fields against the table), the REST API and its OpenAPI document by ``json_name``, the client's ``Stats``
and ``goqctl stats`` (sizes for ``bytes``). Adding a figure: a row here (in the order of the proto's fields),
its field in ``goq/api/v1/queue_manager.proto``, and the code that counts it
(``goq.sidecar.apis.stats_values``).
"""

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["text", "count", "bytes"]


@dataclass(frozen=True)
class StatField:
    """One figure: its wire names, what it counts, and whether it is a count, bytes, or text."""

    name: str
    """The proto field and the client's attribute: ``send_queue``."""
    json_name: str
    """The REST API's name: ``sendQueue`` (also the proto field's JSON name)."""
    description: str
    kind: Kind


STATS: Final = (
    StatField("identity", "identity", "The sidecar's identity, <name>.<namespace>.", "text"),
    StatField("send_queue", "sendQueue", "Messages waiting to be delivered to their destinations.", "count"),
    StatField("receive_queue", "receiveQueue", "Messages waiting for this application, leased ones included.", "count"),
    StatField("in_flight", "inFlight", "Messages leased to this application and not yet acknowledged.", "count"),
    StatField("sent", "sent", "Messages accepted from this application.", "count"),
    StatField("delivered", "delivered", "Messages stored by their destination's sidecar.", "count"),
    StatField("received", "received", "Messages accepted from other sidecars.", "count"),
    StatField("acknowledged", "acknowledged", "Messages this application acknowledged.", "count"),
    StatField("poisoned", "poisoned", "Messages sent to the poison queue, both directions.", "count"),
    StatField("duplicates", "duplicates", "Repeats recognised and dropped by the de-duplication window.", "count"),
    StatField("refused", "refused", "Messages from peers refused (bad signature, not allowed, too large...).", "count"),
    StatField(
        "large_bytes_uploaded",
        "largeBytesUploaded",
        "Large messages' payload bytes taken from this application.",
        "bytes",
    ),
    StatField(
        "large_bytes_received", "largeBytesReceived", "Large messages' payload bytes received from peers.", "bytes"
    ),
    StatField(
        "large_bytes_in_progress",
        "largeBytesInProgress",
        "Bytes of large bodies being received from peers right now.",
        "bytes",
    ),
    StatField(
        "large_transfers_resumed", "largeTransfersResumed", "Large transfers from peers resumed after a break.", "count"
    ),
)
"""Every figure, in the order of ``StatsResponse``'s fields."""

STAT_NAMES: Final = tuple(f.name for f in STATS)
FIGURES: Final = tuple(f for f in STATS if f.kind != "text")
"""The numeric figures (all but ``identity``)."""
