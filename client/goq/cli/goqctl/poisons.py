"""The poison queue as goqctl shows and filters it: by peer, direction, reason and age. Pure: no I/O."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from goq.cli.goqctl.errors import UsageError
from goq.cli.goqctl.humanize import age, ago, iso_time
from goq.cli.goqctl.messaging import printable
from goq.cli.goqctl.output import Table
from goq.client import Poisoned
from goq.durations import parse_duration
from goq.errors import ConfigError


@dataclass(frozen=True)
class PoisonFilter:
    """Which poisoned messages a command means; every part that is set must match."""

    peers: tuple[str, ...] = ()
    """Identities (``billing``, any namespace) or ``<identity>.<namespace>``: the other end of the message."""
    reasons: tuple[str, ...] = ()
    direction: str | None = None
    older_than: float | None = None
    """Seconds: only messages poisoned at least this long ago."""
    newer_than: float | None = None
    """Seconds: only messages poisoned less than this long ago."""

    @classmethod
    def parse(
        cls,
        peers: Sequence[str] = (),
        reasons: Sequence[str] = (),
        direction: str | None = None,
        older_than: str | None = None,
        newer_than: str | None = None,
    ) -> "PoisonFilter":
        """From the command line's strings; a clear UsageError for a bad duration or an empty window."""
        try:
            older = None if older_than is None else parse_duration(older_than, "--older-than")
            newer = None if newer_than is None else parse_duration(newer_than, "--newer-than")
        except ConfigError as exc:
            raise UsageError(str(exc)) from exc
        if older is not None and newer is not None and older >= newer:
            raise UsageError(
                f"--older-than {older_than} --newer-than {newer_than} selects nothing: a message poisoned "
                f"over {older_than} ago is never newer than {newer_than}; give --newer-than the longer duration"
            )
        return cls(tuple(peers), tuple(reasons), direction, older, newer)

    @property
    def active(self) -> bool:
        ages = (self.older_than, self.newer_than)
        return bool(self.peers or self.reasons or self.direction) or any(a is not None for a in ages)

    def matches(self, entry: Poisoned, now: float) -> bool:
        """Whether ``entry`` is selected; ``now`` in epoch seconds."""
        if self.peers and not any(_same_peer(entry.peer, peer) for peer in self.peers):
            return False
        if self.reasons and entry.reason not in self.reasons:
            return False
        if self.direction and entry.direction != self.direction:
            return False
        waited = now - entry.poisoned_at_ms / 1000
        if self.older_than is not None and waited < self.older_than:
            return False
        return self.newer_than is None or waited < self.newer_than

    def select(self, entries: Sequence[Poisoned], now: float) -> list[Poisoned]:
        return [e for e in entries if self.matches(e, now)]


def _same_peer(peer: str, wanted: str) -> bool:
    """``billing`` matches ``billing.<any namespace>``; ``billing.shop`` only itself."""
    return peer == wanted or ("." not in wanted and peer.partition(".")[0] == wanted)


def poisoned_json(e: Poisoned, *, payload: bool) -> dict[str, Any]:
    """The REST API's fields for a poisoned message (``poisonedAt`` in RFC 3339)."""
    fields: dict[str, Any] = {
        "id": e.id,
        "direction": e.direction,
        "peer": e.peer,
        "reason": e.reason,
        "detail": e.detail,
        "attempts": e.attempts,
        "poisonedAt": iso_time(e.poisoned_at_ms),
        "persistent": e.persistent,
    }
    if payload:
        fields["payload"] = printable(e.payload)
        fields["headers"] = e.headers
    return fields


def poison_table(entries: Sequence[Poisoned], now: float, filtered: bool) -> Table:
    """ID, DIRECTION, PEER, REASON, ATTEMPTS, AGE; wide adds POISONED-AT and DETAIL."""
    rows = [
        (
            e.id,
            e.direction,
            e.peer,
            e.reason,
            e.attempts,
            age(now - e.poisoned_at_ms / 1000),
            iso_time(e.poisoned_at_ms),
            e.detail.replace("\n", " ")[:120],
        )
        for e in entries
    ]
    empty = "no poisoned message matches" if filtered else "the poison queue is empty"
    columns = ("ID", "DIRECTION", "PEER", "REASON", "ATTEMPTS", "AGE", "POISONED-AT", "DETAIL")
    return Table(columns, rows, wide_from=6, empty=empty)


def poison_details(e: Poisoned, now: float) -> dict[str, object]:
    """``poison show`` in text: every field, the time as ``<iso> (<age> ago)``."""
    return {
        "id": e.id,
        "direction": e.direction,
        "peer": e.peer,
        "reason": e.reason,
        "detail": e.detail,
        "attempts": e.attempts,
        "poisonedAt": ago(e.poisoned_at_ms, now),
        "persistent": e.persistent,
        "headers": ", ".join(f"{k}={v}" for k, v in sorted(e.headers.items())),
        "payload": printable(e.payload),
    }
