"""The GoQ queue manager (``goq.sidecar``): the sidecar that stores, signs and delivers messages.

Must not import ``goq.operator`` or ``goq.webhook``.
"""
