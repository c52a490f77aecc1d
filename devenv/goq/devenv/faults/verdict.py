"""The checks at the end of a fault run, and its figures: every accepted persistent message was delivered
to the application or poisoned with a reason (else it is lost), nothing refused was delivered, and how many
deliveries were duplicates (allowed: delivery is at least once). Transient messages may be lost by design
when a sidecar dies: counted, never failed."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from goq.devenv.faults.applications import Ledger


@dataclass
class SeedResult:
    """One seed's run: the faults done, and what became of every message."""

    seed: int
    mode: str
    faults: list[str]
    sent: int = 0
    accepted: int = 0
    """Persistent messages answered ``queued`` or ``poisoned``."""
    refused: int = 0
    unknown: int = 0
    """Answers lost with a killed sidecar, timed out, or never given (the sidecar was down)."""
    delivered: int = 0
    """Accepted persistent messages the application received (once or more)."""
    poisoned: int = 0
    """Accepted persistent messages not delivered but in a poison queue with a reason."""
    duplicates: int = 0
    """Deliveries beyond the first, of any message."""
    transient_accepted: int = 0
    transient_lost: int = 0
    lost: list[str] = field(default_factory=list)
    """Accepted persistent messages neither delivered nor poisoned: each with how it was sent."""
    refused_delivered: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.lost and not self.refused_delivered

    def explain(self) -> str:
        """Why the seed failed, with the fault schedule, for the test's failure message."""
        lines = [f"seed {self.seed} ({self.mode}): {len(self.lost)} lost, {len(self.refused_delivered)} refused "
                 f"but delivered; faults in order: {'; '.join(self.faults) or 'none'}"]  # fmt: skip
        lines += [f"  lost: {entry}" for entry in self.lost[:200]]
        lines += [f"  refused but delivered: {entry}" for entry in self.refused_delivered[:200]]
        return "\n".join(lines)


def judge(seed: int, mode: str, faults: list[str], ledger: Ledger, poisoned: Mapping[str, str]) -> SeedResult:
    """Check the ledger against what was delivered and what is in the poison queues."""
    result = SeedResult(seed, mode, faults, sent=len(ledger.sent))
    result.duplicates = sum(count - 1 for count in ledger.deliveries.values() if count > 1)
    for token, sent in ledger.sent.items():
        delivered = ledger.deliveries[token] > 0
        if sent.outcome == "refused":
            result.refused += 1
            if delivered:
                result.refused_delivered.append(f"{token} via {sent.route}, answered {sent.detail}")
        elif sent.outcome == "unknown":
            result.unknown += 1
        elif not sent.persistent:
            result.transient_accepted += 1
            result.transient_lost += not delivered
        else:
            result.accepted += 1
            if delivered:
                result.delivered += 1
            elif poisoned.get(token):
                result.poisoned += 1
            else:
                why = "poisoned without a reason" if token in poisoned else "neither delivered nor poisoned"
                result.lost.append(f"{token} via {sent.route}, answered {sent.detail!r}: {why}")
    return result


COLUMNS = ("seed", "mode", "faults", "sent", "accepted", "refused", "unknown", "delivered", "poisoned",
           "duplicates", "lost", "refused→delivered", "transient lost/accepted", "seconds")  # fmt: skip


def table(results: Sequence[SeedResult]) -> str:
    """The per-seed figures as a Markdown table, the fault schedules listed below it."""
    lines = [header(), *(row(r) for r in results)]
    lines += ["", *(f"seed {r.seed} ({r.mode}): {'; '.join(r.faults)}" for r in results)]
    return "\n".join(lines)


def header() -> str:
    return "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)


def row(r: SeedResult) -> str:
    """One seed's line of the table."""
    cells = (r.seed, r.mode, len(r.faults), r.sent, r.accepted, r.refused, r.unknown, r.delivered, r.poisoned,
             r.duplicates, len(r.lost), len(r.refused_delivered), f"{r.transient_lost}/{r.transient_accepted}",
             f"{r.seconds:.0f}")  # fmt: skip
    return "| " + " | ".join(str(c) for c in cells) + " |"
