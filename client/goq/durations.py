"""Durations as the CRDs write them: ``250ms``, ``30s``, ``5m``, ``1h``, ``1h30m``."""

import re
from typing import Final

from goq.errors import ConfigError

_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""The same syntax as a regular expression, for schemas."""


def parse_duration(value: object, what: str = "duration") -> float:
    """Seconds in ``value``; a clear error for anything that is not a duration string."""
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string like '250ms', '30s', '5m' or '1h', got {value!r}")
    text = value.strip()
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not text or position != len(text):
        raise ConfigError(
            f"{what} {value!r} is not a duration; write a number and a unit: ms, s, m or h (e.g. '250ms', '1h30m')"
        )
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` in the CRD syntax."""
    if seconds < 0:
        raise ValueError(f"negative duration {seconds}")
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"
