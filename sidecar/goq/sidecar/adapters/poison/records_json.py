"""A poisoned message as JSON, for sinks that write it out (file, http): everything needed to redrive it."""

import base64
from typing import Any

from goq.sidecar.domain.records import PoisonRecord


def to_json(r: PoisonRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "owner": r.owner,
        "direction": r.direction,
        "peer": r.peer,
        "reason": r.reason,
        "detail": r.detail,
        "attempts": r.attempts,
        "poisonedAt": r.poisoned_at,
        "persistent": r.persistent,
        "envelope": base64.b64encode(r.body).decode(),
        "keyId": r.key_id,
        "signature": base64.b64encode(r.signature).decode(),
    }
