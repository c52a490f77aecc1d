"""What the sidecar keeps about each message and the rules about it: no I/O, no driver, imports nothing above.

- ``records``: the records kept per message (``Outgoing``, ``Incoming``, ``PoisonRecord``).
- ``errors``: the errors the sidecar refuses with (its APIs turn them into statuses).
- ``batching``: group commit: many callers' writes in one store call.
- ``receipts``: what a send answers per message (``SendReceipt``: ``queued`` or ``poisoned``).
- ``attempts``: what an answer or a failed attempt does, small and large alike: delivered, retry at a
  time, or poison.
- ``poison_reasons``: the one place a poison record is made, a constructor per reason.
- ``poisoning``: handing messages to the poison sink, counted, never dropping one it did not keep.
- ``counting``: the running totals read by stats, metrics and the heartbeat.
- ``histograms``: delivery latency and attempts, observed per message.
- ``recent_keys``: keys remembered for a while and up to a count (de-duplication).
- ``refusing``: deliveries refused from peers, counted exactly and logged in aggregate.
- ``peer_identity``: who is on the other end of a peer connection, from its certificate.
- ``throttling``: a log that stays small under a flood.
"""
