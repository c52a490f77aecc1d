"""Logs are one JSON object per line in containers, with extra fields as keys; readable text at a terminal."""

import json
import logging

import pytest

from goq.logs import JsonFormatter, TextFormatter, configure


def record(message: str, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("goq.sidecar.poison", logging.WARNING, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


def test_json_lines_carry_the_extra_fields_as_keys() -> None:
    line = JsonFormatter().format(record("poisoned outbound message m1", id="m1", peer="billing.shop", attempts=3))
    entry = json.loads(line)
    assert entry["message"] == "poisoned outbound message m1"
    assert (entry["level"], entry["logger"]) == ("WARNING", "goq.sidecar.poison")
    assert (entry["id"], entry["peer"], entry["attempts"]) == ("m1", "billing.shop", 3)
    assert entry["time"].endswith("+00:00")


def test_text_lines_end_with_the_extra_fields() -> None:
    line = TextFormatter().format(record("poisoned", id="m1", reason="max-age"))
    assert line.endswith("goq.sidecar.poison poisoned id=m1 reason=max-age")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format must be one of auto, json, text"):
        configure("INFO", "xml")
