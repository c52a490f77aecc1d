"""Reading CR specs and config dicts field by field, with errors that name the field and what is allowed."""

from collections.abc import Mapping
from typing import Any

from goq.durations import format_duration, parse_duration
from goq.errors import ConfigError


class SpecReader:
    """Reads one mapping; every error names the full path of the field (``spec.retry.maxAttempts``)."""

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path} must be an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.path = path
        self._read: set[str] = set()

    def field(self, name: str) -> str:
        """The full path of a field, for messages."""
        return f"{self.path}.{name}"

    def raw(self, name: str) -> object:
        """A field's value as given, or ``None``."""
        self._read.add(name)
        return self.data.get(name)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer within ``[low, high]``."""
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{self.field(name)} must be an integer from {low} to {high}, got {value!r}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        """A number within ``[low, high]``."""
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise ConfigError(f"{self.field(name)} must be a number from {low:g} to {high:g}, got {value!r}")
        return float(value)

    def duration(self, name: str, default: float, low: float, high: float) -> float:
        """A duration string, in seconds within ``[low, high]``."""
        value = self.raw(name)
        if value is None:
            return default
        seconds = parse_duration(value, self.field(name))
        if not low <= seconds <= high:
            raise ConfigError(
                f"{self.field(name)} must be from {format_duration(low)} to {format_duration(high)}, got {value!r}"
            )
        return seconds

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        """One of ``allowed``."""
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            raise ConfigError(f"{self.field(name)} must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    def text(self, name: str, default: str | None = None) -> str | None:
        """A string, or ``default`` when absent."""
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.field(name)} must be a non-empty string, got {value!r}")
        return value

    def child(self, name: str) -> "SpecReader":
        """A reader for a nested object."""
        return SpecReader(self.raw(name), self.field(name))

    def reject_unknown(self) -> None:
        """Fail on fields nobody read: a typo must not silently fall back to a default."""
        if unknown := sorted(set(self.data) - self._read):
            known = ", ".join(sorted(self._read))
            raise ConfigError(f"{self.path} has unknown field(s) {', '.join(unknown)}; known: {known}")
