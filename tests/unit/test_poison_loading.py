"""Only the poison sink a GoQueue names is loaded; a missing or misconfigured one fails with its name."""

import pytest

from goq.errors import ConfigError
from goq.queue_spec import SinkSpec
from goq.sidecar.poison.base import SinkContext
from goq.sidecar.poison.loading import load_poison_sink
from goq.sidecar.poison.logging_sink import LogPoisonSink

CONTEXT = SinkContext(owner="orders.default")


def test_a_built_in_sink_is_found_by_its_entry_point() -> None:
    assert isinstance(load_poison_sink(SinkSpec("log"), CONTEXT), LogPoisonSink)


def test_a_sink_that_is_not_installed_is_named_with_the_ones_that_are() -> None:
    with pytest.raises(ConfigError, match=r"poison sink 'kafka' is not installed; available: .*log.*mongodb"):
        load_poison_sink(SinkSpec("kafka"), CONTEXT)


def test_the_mongodb_sink_without_mongodb_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="poison sink 'mongodb' needs MongoDB: set GOQ_MONGODB_URI"):
        load_poison_sink(SinkSpec("mongodb"), CONTEXT)


def test_unknown_sink_options_are_refused() -> None:
    with pytest.raises(ConfigError, match="poison sink 'log' takes no options, got path"):
        load_poison_sink(SinkSpec("log", {"path": "/tmp/x"}), CONTEXT)
