"""The GoQueue spec: defaults fill the gaps, and every bad field is refused with its path."""

import pytest

from goq.errors import ConfigError
from goq.queue_spec import GoQueueSpec, MetricsSpec, Overflow, SinkSpec


def test_the_design_example_reads_as_written() -> None:
    spec = GoQueueSpec.from_spec(
        {
            "retryPolicy": "patient",
            "sendQueueLimit": 10000,
            "receiveQueueLimit": 5000,
            "overflow": "reject",
            "poisonQueue": {"type": "mongodb"},
            "metrics": {"interval": "15s", "sinks": [{"type": "prometheus"}, {"type": "log"}]},
        }
    )
    assert spec == GoQueueSpec(
        retry_policy="patient",
        send_queue_limit=10000,
        receive_queue_limit=5000,
        overflow=Overflow.REJECT,
        poison_queue=SinkSpec("mongodb"),
        metrics=MetricsSpec(15.0, (SinkSpec("prometheus"), SinkSpec("log"))),
    )


def test_an_empty_spec_is_all_defaults() -> None:
    spec = GoQueueSpec.from_spec({})
    assert spec == GoQueueSpec()
    assert spec.overflow is Overflow.POISON
    assert spec.poison_queue == SinkSpec("mongodb")


def test_sink_options_are_kept_for_the_sink() -> None:
    spec = GoQueueSpec.from_spec({"poisonQueue": {"type": "file", "path": "/var/goq/poison.jsonl"}})
    assert spec.poison_queue == SinkSpec("file", {"path": "/var/goq/poison.jsonl"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"sendQueueLimit": -3}, r"spec.sendQueueLimit must be an integer from 1 to 10000000, got -3"),
        ({"overflow": "drop"}, r"spec.overflow must be one of poison, reject, got 'drop'"),
        ({"retryPolicy": "Patient"}, r"spec.retryPolicy \(a RetryPolicy name\) 'Patient' must be lower case"),
        ({"poisonQueue": {}}, r"spec.poisonQueue.type is required"),
        ({"metrics": {"sinks": []}}, r"spec.metrics.sinks must be a non-empty list"),
        ({"metrics": {"sinks": [{"kind": "log"}]}}, r"spec.metrics.sinks\[0\].type is required"),
        ({"metrics": {"interval": "1ms"}}, r"spec.metrics.interval must be from 1s to 1h"),
        ({"metrics": {"period": "1s"}}, r"spec.metrics has unknown field\(s\) period"),
        ({"sendQueueLimt": 5}, r"spec has unknown field\(s\) sendQueueLimt"),
    ],
)
def test_bad_fields_are_refused_with_their_path(spec: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GoQueueSpec.from_spec(spec)


@pytest.mark.parametrize(
    ("value", "size"),
    [(1, 1), (65536, 65536), ("512Ki", 524288), ("64Mi", 67108864), ("10M", 10_000_000), ("4Gi", 4294967296)],
)
def test_max_message_size_is_bytes_or_a_quantity(value: object, size: int) -> None:
    assert GoQueueSpec.from_spec({"maxMessageSize": value}).max_message_size == size


def test_max_message_size_defaults_well_below_the_4_gib_maximum() -> None:
    assert GoQueueSpec().max_message_size == 64 * 1024 * 1024


@pytest.mark.parametrize("value", [0, -1, 4294967297, "5Gi", "1Ti", "64 Mi", "lots", True, 1.5])
def test_a_max_message_size_out_of_range_or_misspelt_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match=r"spec.maxMessageSize must be a size from 1 byte to 4Gi"):
        GoQueueSpec.from_spec({"maxMessageSize": value})
