"""Where every accepted message of a run went, by id: received, poisoned with its reason, or lost.

GoQ promises that an accepted persistent message is delivered or in a poison queue with its reason; a run
that compares what arrived with what was sent must count the poisoned (DESIGN.md: unknown-outcome attempts
count toward ``maxAttempts``), and anything neither received nor poisoned is a loss to report loudly.
"""

from collections.abc import Iterable, Mapping


def account(
    accepted: Mapping[str, Iterable[str]],
    received: Mapping[str, Iterable[str]],
    poisoned: Iterable[str],
    sent: int,
) -> dict[str, int | list[str]]:
    """``accepted`` and ``received`` map an identity to message ids (what its sidecar accepted from it, what
    it received); ``poisoned`` are the ids in any sidecar's poison queue; ``sent`` how many the producer
    sent in all. Ids are unique per message across the run."""
    accepted_ids = {i for ids in accepted.values() for i in ids}
    received_ids = {i for ids in received.values() for i in ids}
    poisoned_ids = set(poisoned) & accepted_ids
    lost = accepted_ids - received_ids - poisoned_ids
    return {
        "sent": sent,
        "accepted": len(accepted_ids),
        "refused": sent - len(accepted_ids),
        "received": len(received_ids & accepted_ids),
        "poisoned": len(poisoned_ids),
        "poisoned_and_received": len(poisoned_ids & received_ids),
        "received_not_accepted": len(received_ids - accepted_ids),
        "lost": len(lost),
        "lost_ids": sorted(lost)[:20],
    }
