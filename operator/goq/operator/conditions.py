"""Status conditions in Kubernetes conventions. Pure."""

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from goq.queue_status import format_time


@dataclass(frozen=True)
class Condition:
    """What a condition should say now; ``lastTransitionTime`` is kept unless ``status`` changes."""

    type: str
    status: bool
    reason: str
    message: str


def merge_conditions(
    current: Sequence[Mapping[str, Any]] | None,
    wanted: Sequence[Condition],
    now: datetime.datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """The conditions list with ``wanted`` applied; other types are kept as they are."""
    by_type = {c.get("type"): dict(c) for c in current or [] if isinstance(c, Mapping)}
    for cond in wanted:
        status = "True" if cond.status else "False"
        old = by_type.get(cond.type)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else None
        entry: dict[str, Any] = {
            "type": cond.type,
            "status": status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": since or format_time(now),
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        by_type[cond.type] = entry
    return [by_type[k] for k in sorted(by_type, key=str)]
