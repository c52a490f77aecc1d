"""The pod mutation (``goq.webhook``): pod and settings in, JSON Patch out.

Pure: no I/O, no Kubernetes client. Must not import ``goq.operator`` or ``goq.sidecar``.
"""
