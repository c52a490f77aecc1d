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

And how much the port holds at once (``peer_server_options``; docs/sidecar.md, "The peer port's bounds"):
connections (``GOQ_PEER_MAX_CONNECTIONS``: gRPC closes a new one at the bound), streams per connection
(``GOQ_PEER_MAX_STREAMS``: HTTP/2's ``SETTINGS_MAX_CONCURRENT_STREAMS``; an honest sender uses one ``Deliver``
and a few ``Transfer`` streams per receiver), calls in progress across all connections
(``GOQ_PEER_MAX_CALLS``, ``grpc.aio.server(maximum_concurrent_rpcs=...)``: beyond, RESOURCE_EXHAUSTED), header
bytes per request (``MAX_METADATA``), pings (``PING_STRIKES``), and how long a connection may stay without a
finished handshake (``HANDSHAKE_TIMEOUT_MS``) or without a call (``IDLE_CONNECTION_MS``).
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


MAX_METADATA: Final = 8 * 1024
"""Bytes of a request's headers (HTTP/2's ``SETTINGS_MAX_HEADER_LIST_SIZE``), and ``ABSOLUTE_MAX_METADATA`` the
hard bound: a sender's headers are a few hundred bytes (path, content type, a trace context). gRPC's own defaults,
set here so that they stay the bound whatever gRPC's change."""
ABSOLUTE_MAX_METADATA: Final = 16 * 1024
PING_STRIKES: Final = 2
"""Pings without data sooner than the server allows (``grpc.http2.min_ping_interval_without_data_ms``, half a
sender's keepalive interval) that a connection may send; one more and gRPC closes it with GOAWAY
``ENHANCE_YOUR_CALM`` (a ping flood). A sender's keepalive pings never strike."""
HANDSHAKE_TIMEOUT_MS: Final = 20_000
"""Milliseconds from a new connection to the end of its TLS handshake and HTTP/2 preface (gRPC's default is 120 s):
a connection that sends nothing, or trickles its handshake, is closed instead of holding a place under the bound."""
IDLE_CONNECTION_MS: Final = 5 * 60_000
"""Milliseconds a connection may go without a call before gRPC closes it (GOAWAY): a sender's link keeps its
``Deliver`` stream open, so only connections that never call (or stopped calling) are closed."""


def peer_server_options(max_payload: int, max_connections: int, max_streams: int) -> list[tuple[str, int]]:
    """The peer server's gRPC options: the bytes bound per request, the keepalive settings, and the bounds on
    connections, streams, headers and pings (see the module's docstring)."""
    options = dict(server_options(request_bytes_limit(max_payload) - GRPC_OVERHEAD))
    options.update(
        {
            "grpc.max_allowed_incoming_connections": max_connections,
            "grpc.max_concurrent_streams": max_streams,
            "grpc.max_metadata_size": MAX_METADATA,
            "grpc.absolute_max_metadata_size": ABSOLUTE_MAX_METADATA,
            "grpc.http2.max_ping_strikes": PING_STRIKES,
            "grpc.server_handshake_timeout_ms": HANDSHAKE_TIMEOUT_MS,
            "grpc.max_connection_idle_ms": IDLE_CONNECTION_MS,
        }
    )
    return list(options.items())
