"""Durations are read and written in the CRD syntax (250ms, 30s, 5m, 1h, 1h30m)."""

import re

import pytest

from goq.durations import DURATION_PATTERN, format_duration, parse_duration
from goq.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1.5s", 1.5), ("0s", 0)],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert re.fullmatch(DURATION_PATTERN, text)


@pytest.mark.parametrize("text", ["", "30", "s", "-5s", "5 s", "5d", "1h 30m", "ms5"])
def test_non_durations_are_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(ConfigError, match="write a number and a unit: ms, s, m or h"):
        parse_duration(text, "spec.maxAge")
    assert not re.fullmatch(DURATION_PATTERN, text)


def test_a_number_instead_of_a_string_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"spec.maxAge must be a string like '250ms'.*got 30"):
        parse_duration(30, "spec.maxAge")


@pytest.mark.parametrize(("seconds", "text"), [(0.25, "250ms"), (30, "30s"), (3600, "1h"), (5400, "1h30m"), (0, "0s")])
def test_durations_format_in_their_shortest_spelling(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
