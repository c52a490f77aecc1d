"""The figures of ``Stats`` are defined once (``goq.stats_fields``): the hand-written proto is checked against the
table, and every API renders the table (gRPC and REST values, the OpenAPI schema, the client, goqctl)."""

import pickle
from dataclasses import FrozenInstanceError
from types import SimpleNamespace
from typing import Any, cast

import pytest
from google.protobuf.descriptor import FieldDescriptor

from goq.api.v1 import queue_manager_pb2 as pb
from goq.cli.goqctl.app import BYTE_FIGURES
from goq.client.models import Stats, stats
from goq.errors import ConfigError
from goq.sidecar.apis.openapi import openapi_document
from goq.sidecar.apis.stats_values import stat_values, stats_json
from goq.sidecar.core.engine import QueueManager
from goq.sidecar.core.engine import Stats as EngineStats
from goq.sidecar.domain.counting import Counters
from goq.sidecar.large.progress import LargeProgress
from goq.sidecar.large.service import LargeMessages
from goq.stats_fields import STAT_NAMES, STATS


def test_the_proto_has_the_tables_figures_in_its_order_with_its_json_names() -> None:
    fields = pb.StatsResponse.DESCRIPTOR.fields
    assert [f.name for f in fields] == [s.name for s in STATS]
    assert [f.json_name for f in fields] == [s.json_name for s in STATS]
    numbers = [f.number for f in fields]
    assert numbers == sorted(numbers), "a new figure takes the next field number, at the end of the table"


def test_the_proto_types_follow_the_tables_kinds() -> None:
    types = {f.name: f.type for f in pb.StatsResponse.DESCRIPTOR.fields}
    for figure in STATS:
        expected = FieldDescriptor.TYPE_STRING if figure.kind == "text" else FieldDescriptor.TYPE_UINT64
        assert types[figure.name] == expected, figure.name


class _Engine:
    def __init__(self) -> None:
        counters = Counters(sent=5, delivered=4, received=3, acknowledged=2, duplicates=1)
        counters.poisoned.update({"overflow": 2, "nack": 1})
        counters.refused.update({"expired": 4})
        self._stats = EngineStats("orders.shop", send_queue=7, receive_queue=8, in_flight=9, counters=counters)

    def stats(self) -> EngineStats:
        return self._stats


def _large() -> LargeMessages:
    progress = LargeProgress(bytes_uploaded=10, bytes_received=11, transfers_resumed=12)
    progress.receiving.update({"a": 6, "b": 7})
    return cast(LargeMessages, SimpleNamespace(progress=progress))


def test_every_figure_is_read_in_the_tables_order() -> None:
    values = stat_values(cast(QueueManager, _Engine()), _large())
    assert list(values) == list(STAT_NAMES)
    assert values == {
        "identity": "orders.shop",
        "send_queue": 7,
        "receive_queue": 8,
        "in_flight": 9,
        "sent": 5,
        "delivered": 4,
        "received": 3,
        "acknowledged": 2,
        "poisoned": 3,
        "duplicates": 1,
        "refused": 4,
        "large_bytes_uploaded": 10,
        "large_bytes_received": 11,
        "large_bytes_in_progress": 13,
        "large_transfers_resumed": 12,
    }


def test_without_large_messages_their_figures_are_zero_in_both_apis() -> None:
    values = stats_json(cast(QueueManager, _Engine()), None)
    assert (values["largeBytesUploaded"], values["largeTransfersResumed"]) == (0, 0)
    assert pb.StatsResponse(**cast(dict[str, Any], stat_values(cast(QueueManager, _Engine()), None))).sent == 5


def test_the_rest_answer_the_openapi_schema_and_the_client_use_the_same_names_in_the_same_order() -> None:
    engine = cast(QueueManager, _Engine())
    rest = stats_json(engine, _large())
    schema = openapi_document(1024)["components"]["schemas"]["Stats"]
    client = stats(pb.StatsResponse(**cast(dict[str, Any], stat_values(engine, _large()))))
    assert list(rest) == list(schema["properties"]) == schema["required"] == list(client.to_dict())
    assert client.to_dict() == rest
    assert [p["description"] for p in schema["properties"].values()] == [f.description for f in STATS]


def test_goqctl_shows_the_tables_byte_figures_as_sizes() -> None:
    assert {f.json_name for f in STATS if f.kind == "bytes"} == BYTE_FIGURES
    assert "largeBytesReceived" in BYTE_FIGURES
    assert "largeTransfersResumed" not in BYTE_FIGURES


def test_client_stats_read_every_figure_as_an_attribute() -> None:
    figures = stats(pb.StatsResponse(identity="billing.shop", **{f.name: i for i, f in enumerate(STATS) if i}))
    assert figures.identity == "billing.shop"
    assert [getattr(figures, f.name) for f in STATS[1:]] == list(range(1, len(STATS)))
    with pytest.raises(AttributeError, match="Stats has no figure 'snet'"):
        figures.snet  # noqa: B018


def test_client_stats_are_values_that_cannot_be_changed() -> None:
    figures = stats(pb.StatsResponse(identity="billing.shop", sent=3))
    same = stats(pb.StatsResponse(identity="billing.shop", sent=3))
    assert figures == same
    assert hash(figures) == hash(same)
    assert figures != stats(pb.StatsResponse(identity="billing.shop", sent=4))
    assert pickle.loads(pickle.dumps(figures)) == figures
    assert repr(figures).startswith("Stats(identity='billing.shop', send_queue=0,")
    assert "large_bytes_received" in dir(figures)
    with pytest.raises(FrozenInstanceError):
        figures.sent = 5  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del figures.sent


def test_client_stats_need_exactly_the_tables_figures() -> None:
    with pytest.raises(ConfigError, match="stats need exactly the figures identity, send_queue"):
        Stats({"identity": "a", "sent": 1})
