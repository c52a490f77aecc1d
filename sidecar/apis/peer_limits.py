"""How much one request to the peer port may hold: bounds that keep a receiver's work per request small,
set so that no honest sender's request is ever over them.

- Envelopes per ``Deliver`` batch: ``MAX_BATCH_ENVELOPES``, the most a sender's ``GOQ_BATCH_MAX`` allows.
  A batch over it is refused whole, before any envelope is looked at (``goq.sidecar.apis.peer_service``).
- Bytes per request (a ``Deliver`` batch or a ``Transfer`` part): gRPC's receive limit, so a request over
  it is refused while it arrives, never parsed. A sender's batch holds at most 1 MiB of bodies, or a single
  body when that is larger (``Lane._take_batch``); a body sent in a batch is at most the payload limit
  (``GOQ_MAX_PAYLOAD_BYTES``; larger ones take ``Transfer``); a ``Transfer`` part holds at most one chunk
  (``MAX_CHUNK``). The limit is the largest of these plus ``GRPC_OVERHEAD`` for envelopes, signatures and
  framing (10,000 envelopes add about 600 KB).
"""

from typing import Final

from goq.sidecar.adapters.peering import GRPC_OVERHEAD, server_options
from goq.sidecar.large.receiving import MAX_CHUNK

MAX_BATCH_ENVELOPES: Final = 10_000
"""Envelopes in one ``DeliverBatch``: the upper end of ``GOQ_BATCH_MAX``."""
CHECK_CHUNK: Final = 1_000
"""Envelopes checked without letting other work in: 10,000 forged envelopes took 30 to 85 ms to check
(signature, decode, result) on one core, too long to hold the event loop; 1,000 take a few ms."""
GRPC_MESSAGE_LIMIT: Final = 2**31 - 1
"""gRPC's size settings are 32-bit signed integers."""


def request_bytes_limit(max_payload: int) -> int:
    """The most bytes one request to the peer port may have, given this sidecar's payload limit."""
    return min(max(max_payload, MAX_CHUNK, 1024 * 1024) + GRPC_OVERHEAD, GRPC_MESSAGE_LIMIT)


def peer_server_options(max_payload: int) -> list[tuple[str, int]]:
    """The peer server's gRPC options: the bytes bound per request, and the keepalive settings."""
    return server_options(request_bytes_limit(max_payload) - GRPC_OVERHEAD)
