"""What a send answers per message: its receipt (``queued`` or ``poisoned``), or the error that refused it."""

from dataclasses import dataclass
from typing import Final

QUEUED: Final = "queued"
POISONED: Final = "poisoned"


@dataclass
class SendReceipt:
    """Accepted: the message's id, and ``queued`` or ``poisoned`` (send queue full, overflow ``poison``)."""

    id: str
    state: str
