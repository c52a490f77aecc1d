"""The persistent store: one identity's outbox and inbox in MongoDB.

Layout: every document's ``_id`` starts with the owner (``<identity>.<namespace>|``), so one
identity's messages sit together in the ``_id`` index and recovery is one range scan, with no extra
index to slow inserts. ``h`` names the sidecar instance that holds a record; when an instance stops
heartbeating, another replica of the same identity adopts its records.

Writes the delivery promise depends on (a send, a receipt) are majority writes, grouped; writes whose
loss only causes a redelivery (a delete after delivery, an acknowledgement) go in the background.
Acknowledged inbox records stay as small tombstones for the dedupe window (TTL index), so a late
redelivery is still recognised. Payloads and signatures are stored as plain ``bytes`` (BSON binary
subtype 0): wrapping them in ``bson.Binary`` first cost a tenth of a sidecar's CPU at full rate.

- ``store``: ``MongoStore``, the ports' implementation: opening, recovery, heartbeats and adoption, waiting messages.
- ``outbox``: ``MongoOutbox``, messages accepted from the application until delivered or poisoned.
- ``inbox``: ``MongoInbox``, messages received until acknowledged, then tombstones.
- ``withdrawals``: the documents of writes that failed in appearance, deleted until MongoDB confirms it.
- ``common``: the document type, inserts that tell new from duplicate, background writes, group progress.

Only ``goq.sidecar.wiring`` imports this package (the ``mongodb-adapters`` contract), for ``MongoStore``.
"""

from goq.sidecar.adapters.stores.mongo.store import MongoStore

__all__ = ["MongoStore"]
