"""Only the poison sink a GoQueue names is loaded; a missing or misconfigured one fails with its name; without
MongoDB the ``mongodb`` sink falls back to ``log``."""

import logging

import pytest

from goq.errors import ConfigError
from goq.queue_spec import SinkSpec
from goq.sidecar.adapters.poison.file_sink import FilePoisonSink
from goq.sidecar.adapters.poison.loading import load_poison_sink
from goq.sidecar.adapters.poison.logging_sink import LogPoisonSink
from goq.sidecar.adapters.poison.mongodb import MongoPoisonSink
from goq.sidecar.adapters.poison.transient_only import TransientOnlySink
from goq.sidecar.domain.records import PoisonRecord
from goq.sidecar.ports.poison import PoisonSinkError, SinkContext

CONTEXT = SinkContext(owner="orders.default")


def test_a_built_in_sink_is_found_by_its_entry_point() -> None:
    assert isinstance(load_poison_sink(SinkSpec("file", {"path": "/tmp/poison.jsonl"}), CONTEXT), FilePoisonSink)


def test_the_log_sink_without_mongodb_refuses_persistent_messages_too() -> None:
    sink = load_poison_sink(SinkSpec("log"), CONTEXT)
    assert isinstance(sink, TransientOnlySink)
    assert isinstance(sink.inner, LogPoisonSink)


def test_a_sink_that_is_not_installed_is_named_with_the_ones_that_are() -> None:
    with pytest.raises(ConfigError, match=r"poison sink 'kafka' is not installed; available: .*log.*mongodb"):
        load_poison_sink(SinkSpec("kafka"), CONTEXT)


def test_the_mongodb_sink_without_mongodb_falls_back_to_the_log_sink_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "goq.sidecar.poison"):
        sink = load_poison_sink(SinkSpec("mongodb", {"collection": "dead"}), CONTEXT)
    assert isinstance(sink, TransientOnlySink)
    assert isinstance(sink.inner, LogPoisonSink)
    assert "poisoned messages are only logged" in caplog.text
    assert "GOQ_MONGODB_URI is not set" in caplog.text


def record(message_id: str, *, persistent: bool) -> PoisonRecord:
    return PoisonRecord(
        message_id,
        "orders.default",
        "outbound",
        "billing.default",
        "overflow",
        "send queue full",
        0,
        0.0,
        persistent,
        b"body",
        "k1",
        b"sig",
    )


async def test_the_fallback_logs_transient_messages_and_refuses_persistent_ones_so_their_sender_keeps_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = load_poison_sink(SinkSpec("mongodb"), CONTEXT)
    with caplog.at_level(logging.WARNING, "goq.poison"):
        await sink.put([record("t-1", persistent=False)])
    assert '"id": "t-1"' in caplog.text
    with pytest.raises(PoisonSinkError, match="a persistent message cannot be poisoned on this sidecar"):
        await sink.put([record("t-2", persistent=False), record("p-1", persistent=True)])
    assert '"id": "t-2"' not in caplog.text


def test_the_mongodb_sink_made_directly_without_mongodb_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="poison sink 'mongodb' needs MongoDB: set GOQ_MONGODB_URI"):
        MongoPoisonSink(CONTEXT)


def test_other_sinks_without_mongodb_are_loaded_as_named(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "goq.sidecar.poison"):
        sink = load_poison_sink(SinkSpec("file", {"path": "/tmp/poison.jsonl"}), CONTEXT)
    assert isinstance(sink, FilePoisonSink)
    assert caplog.text == ""


def test_unknown_sink_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="poison sink 'log' takes no options, got path"):
        load_poison_sink(SinkSpec("log", {"path": "/tmp/x"}), CONTEXT)
