"""What the sidecar talks to outside itself, each behind a port or a small interface of its own.

Only ``runtime`` chooses among them; MongoDB's driver is imported only by its adapters (``mongodb-adapters``).

- ``stores``: where messages are kept: MongoDB (persistent), memory (transient), absent (no MongoDB).
- ``poison``: the poison sinks (``mongodb``, ``log``, ``file``, ``http``) and how one is loaded.
- ``plugins``: finding a named plug-in by entry point (poison sinks, metrics sinks).
- ``peering``: the sending side of the peer protocol: one stream to one replica, a window of batches.
- ``resolving``: finding a destination's ready replicas (DNS, or a static map).
- ``peer_tls``: mutual TLS on the peer port with the identity's certificate, renewed without a restart.
- ``secret_following``: following a mounted Secret directory as the kubelet changes it.
- ``keys_watching``: the mounted key ring, followed so that a rotated ring is in force within seconds.
- ``kube``: the Kubernetes side: the GoQueue's settings in, heartbeats out, over a small HTTP client.
"""
