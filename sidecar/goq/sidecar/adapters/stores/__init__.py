"""Where the sidecar keeps messages it is responsible for: MongoDB (persistent) or memory (transient).

Every store implements the ports in ``goq.sidecar.ports.stores``; the engine never knows which one it talks to,
and never imports ``mongo`` (an import-linter contract). Owns no queueing logic: only durability, idempotency
and recovery.

- ``mongo``: the persistent store (``MongoStore``), its outbox and inbox.
- ``withdrawal_journal``: the local journal of failed writes still to withdraw from MongoDB.
- ``memory``: transient messages' idempotency and de-duplication, nothing durable.
- ``absent``: stand-ins when no MongoDB is configured, refusing persistent messages with the reason.
"""
