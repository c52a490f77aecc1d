"""Where the sidecar keeps messages it is responsible for: MongoDB (persistent) or memory (transient).

Both implement the interfaces in ``base``; the engine never knows which one it talks to. Owns no
queueing logic: only durability, idempotency and recovery.
"""
