"""How long a message may live, against the de-duplication window (``GOQ_DEDUPE_WINDOW``). Pure.

A receiver recognises a redelivery only while it remembers the message's key. Three rules, all
measured from the message's signed creation time, keep every delivery that can still be accepted
inside what the receiver remembers:

- A sender stops retrying within the window: a RetryPolicy's ``maxAge`` may not exceed it
  (``check_max_age``, at start and in the operator's webhook); a longer one met at run time is cut to
  it (``within_window``), and the message is poisoned (``max-age``) there.
- A receiver refuses an envelope created more than ``window + CLOCK_SKEW`` before its own clock
  (``expired``) or more than ``CLOCK_SKEW`` after it (``clock-skew``): see ``age_refusal``. A copy
  replayed after the window is refused, never handed to the application again.
- A receiver remembers a key for ``remembered_for(window)`` after it last held the message.
"""

import dataclasses
from typing import Final

from goq.durations import format_duration
from goq.errors import ConfigError
from goq.retry import RetryPolicy

DEFAULT_DEDUPE_WINDOW: Final = 7200.0
"""Seconds (2h): the sidecar's ``GOQ_DEDUPE_WINDOW`` and the operator's, which it passes to every sidecar."""
CLOCK_SKEW: Final = 300.0
"""Seconds (5 min) two sidecars' clocks may disagree. The creation time is the sender's clock, the
check the receiver's: without an allowance a healthy message would be refused near the window's end,
and one from a sender whose clock runs ahead would be refused at once. NTP keeps hosts within
milliseconds; 5 minutes leaves room for a badly kept one (Kerberos allows as much, for the same reason)."""


def age_refusal(created_at_ms: int, now: float, window: float) -> tuple[str, str] | None:
    """Why an envelope created at ``created_at_ms`` (ms since the epoch) is refused ``now``, or ``None``.

    ``(reason, detail)``: ``expired`` when older than ``window + CLOCK_SKEW``, ``clock-skew`` when
    created more than ``CLOCK_SKEW`` in the future; the edges themselves are accepted."""
    age = now - created_at_ms / 1000
    if age > window + CLOCK_SKEW:
        return "expired", (
            f"created {format_duration(round(age))} ago; envelopes older than the de-duplication window "
            f"({format_duration(window)}) plus the clock-skew allowance ({format_duration(CLOCK_SKEW)}) are refused, "
            "as a redelivery this late may no longer be recognised"
        )
    if -age > CLOCK_SKEW:
        return "clock-skew", (
            f"created {format_duration(round(-age))} in the future by this sidecar's clock; at most "
            f"{format_duration(CLOCK_SKEW)} is allowed (are both hosts' clocks synchronised?)"
        )
    return None


def remembered_for(window: float) -> float:
    """Seconds a receiver remembers a key after it last held the message: ``window + 2 * CLOCK_SKEW``.

    ``age_refusal`` accepts an envelope no earlier than ``created - CLOCK_SKEW`` and no later than
    ``created + window + CLOCK_SKEW`` (receiver's clock, whatever the sender's): ``window + 2 * CLOCK_SKEW``
    after any acceptance covers every later one. The window alone would not: a message created
    ``CLOCK_SKEW`` in the future and consumed at once would be forgotten while still accepted."""
    return window + 2 * CLOCK_SKEW


def check_max_age(max_age: float, window: float, what: str, window_name: str) -> None:
    """ConfigError when a retry policy's ``maxAge`` exceeds the window: its sender could still be retrying
    a message the receiver no longer remembers. ``what`` and ``window_name`` name the two settings."""
    if max_age > window:
        raise ConfigError(
            f"{what} ({format_duration(max_age)}) exceeds the de-duplication window ({format_duration(window)}, "
            f"{window_name}): a message still retried after the window could be delivered twice; "
            f"maxAge may be at most {format_duration(window)} (or lengthen the window)"
        )


def within_window(policy: RetryPolicy, window: float) -> RetryPolicy:
    """``policy``, its ``max_age`` cut to ``window`` if longer (the poison detail then names the window)."""
    if policy.max_age <= window:
        return policy
    note = (
        f"the de-duplication window GOQ_DEDUPE_WINDOW {format_duration(window)}, "
        f"shorter than the RetryPolicy's maxAge {format_duration(policy.max_age)}"
    )
    return dataclasses.replace(policy, max_age=window, max_age_limit=note)
