"""The REST API's limits and patterns: what its handlers enforce and its OpenAPI document publishes.

One place for both: the request and response types of ``rest_types`` carry them, ``rest_json`` checks requests
against those types and ``openapi`` writes its schemas from them, so the document allows what the server accepts.
The patterns restate the domain's own rules (``goq.messages``, ``goq.identity``); tests/unit/test_rest_requests.py
holds each to the validator it describes.
"""

from typing import Final

from goq.identity import MAX_IDENTITY_LENGTH, MAX_NAMESPACE_LENGTH
from goq.messages import MAX_HEADER_NAME, MAX_ID_LENGTH

MAX_RECEIVE: Final = 1000
"""Most messages one ``GET /v1/messages`` may lease (``max``)."""
DEFAULT_RECEIVE: Final = 10
MAX_WAIT: Final = 60
"""Longest long poll, in seconds (``wait``); the default 0 answers at once."""
MAX_POISON_LIST: Final = 1000
DEFAULT_POISON_LIST: Final = 100
MAX_REDRIVE: Final = 1000
MAX_ACK: Final = 10_000
"""Most ids one ``POST /v1/messages/ack`` takes (its body stays under the 1 MiB of small bodies)."""
MAX_DELAY: Final = 86400
"""Longest nack delay, seconds (the engine's bound)."""

BASE64_PATTERN: Final = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
"""Standard base64 with padding: what ``payload`` must be."""
_LABEL = r"[a-z0-9](?:[-a-z0-9]{{0,{n}}}[a-z0-9])?"
ADDRESS_PATTERN: Final = (
    rf"^{_LABEL.format(n=MAX_IDENTITY_LENGTH - 2)}(?:\.{_LABEL.format(n=MAX_NAMESPACE_LENGTH - 2)})?$"
)
"""``<identity>`` or ``<identity>.<namespace>``: DNS-1123 labels of at most 59 and 63 characters."""
ID_PATTERN: Final = rf"^[!-~]{{1,{MAX_ID_LENGTH}}}$"
"""A message id: 1 to 128 printable ASCII characters without spaces."""
HEADER_NAME_PATTERN: Final = rf"^[A-Za-z0-9._:/-]{{1,{MAX_HEADER_NAME}}}$"
SECONDS_PATTERN: Final = r"^[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?$"
"""How ``wait`` is written in a query string: ``0``, ``2.5``, ``1e1``."""
