"""The GoQ operator (``goq.operator``): reconciles GoQueue and RetryPolicy resources.

Owns the per-identity headless Services, the HMAC key Secret, status aggregation and the admission
server. Must not import ``goq.sidecar`` or ``goq.webhook``; ``goq.cli`` wires the webhook in.
"""
