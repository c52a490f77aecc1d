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
