"""Large messages: payloads that travel in chunks beside a small signed envelope.

The small-message path (engine, outbound, inbound) is left as it is; a large message's envelope is
an ordinary envelope with an empty payload and a ``LargeBody`` that gives the body's size and HMAC.
This package stores bodies (GridFS when persistent, a bounded spill directory when transient),
takes them from the application as streams, moves them to the destination's sidecar in chunks that
resume where a broken transfer stopped, and hands them to the application as streams. No process
holds a whole body in memory: at most a few chunks at a time.
"""
