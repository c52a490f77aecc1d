"""The Python client's surface without a sidecar: the blocking and the asyncio client offer the same calls with
the same parameters and defaults, and ``Stats`` carries every figure of the gRPC ``Stats`` answer (the figures' table:
test_stats_fields.py)."""

import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

import pytest

import goq.client
from goq.api.v1 import queue_manager_pb2 as pb
from goq.client import AsyncClient, Client
from goq.client.asynchronous import AsyncAcknowledger
from goq.client.models import stats
from goq.client.synchronous import Acknowledger
from goq.sidecar.apis.openapi import openapi_document

PAIRS = [(Client, AsyncClient), (Acknowledger, AsyncAcknowledger)]

WIDER_IN_ASYNC = {("send_large", "chunks")}
"""Parameters the asyncio client may type more widely: ``send_large`` also takes an async iterable of chunks."""


def public(cls: type) -> dict[str, Callable[..., Any]]:
    return {name: member for name, member in vars(cls).items() if not name.startswith("_") and callable(member)}


def blocking_form(annotation: object) -> str:
    """An annotation as the blocking client would write it: ``AsyncIterator[X]`` is ``Iterator[X]``,
    ``AsyncAcknowledger`` is ``Acknowledger``."""
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    return re.sub(r"\bAsync(?=[A-Z])", "", text)


@pytest.mark.parametrize(("blocking", "asynchronous"), PAIRS, ids=lambda c: c.__name__)
def test_both_clients_offer_the_same_methods(blocking: type, asynchronous: type) -> None:
    assert sorted(public(asynchronous)) == sorted(public(blocking))


@pytest.mark.parametrize(("blocking", "asynchronous"), PAIRS, ids=lambda c: c.__name__)
def test_every_method_takes_the_same_parameters_with_the_same_defaults(blocking: type, asynchronous: type) -> None:
    made_by_users = blocking is Client  # an acknowledger is made by ``acknowledger()``, from a private stub
    methods = [*(["__init__"] if made_by_users else []), *sorted(public(blocking))]
    for name in methods:
        mine, theirs = inspect.signature(getattr(blocking, name)), inspect.signature(getattr(asynchronous, name))
        assert [(p.name, p.kind, p.default) for p in theirs.parameters.values()] == [
            (p.name, p.kind, p.default) for p in mine.parameters.values()
        ], f"{asynchronous.__name__}.{name}{theirs} differs from {blocking.__name__}.{name}{mine}"
        for parameter in mine.parameters.values():
            if (name, parameter.name) in WIDER_IN_ASYNC:
                continue
            other = theirs.parameters[parameter.name].annotation
            assert blocking_form(other) == blocking_form(parameter.annotation), f"{name}({parameter.name})"
        assert blocking_form(theirs.return_annotation) == blocking_form(mine.return_annotation), name


def test_the_asyncio_client_awaits_every_call_except_making_an_acknowledger() -> None:
    not_awaited = {
        name
        for name, method in public(AsyncClient).items()
        if not (inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method))
    }
    assert not_awaited == {"acknowledger"}  # it returns an async context manager
    assert not any(
        inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method) for method in public(Client).values()
    )


def test_the_package_exports_both_clients_and_every_result_type() -> None:
    assert {"Client", "AsyncClient", "Stats", "Receipt", "Received", "Poisoned", "Outgoing"} <= set(goq.client.__all__)
    assert all(hasattr(goq.client, name) for name in goq.client.__all__)


def test_stats_are_read_from_the_answer_and_cannot_be_changed() -> None:
    answer = pb.StatsResponse(identity="billing.shop", send_queue=2, in_flight=1, large_transfers_resumed=3)
    figures = stats(answer)
    assert (figures.identity, figures.send_queue, figures.in_flight) == ("billing.shop", 2, 1)
    assert (figures.receive_queue, figures.large_transfers_resumed) == (0, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        figures.sent = 5  # type: ignore[misc]


def test_stats_as_a_dict_use_the_rest_apis_names() -> None:
    figures = stats(pb.StatsResponse(identity="billing.shop", receive_queue=7, large_bytes_in_progress=9))
    as_dict = figures.to_dict()
    schema = openapi_document(1024 * 1024)["components"]["schemas"]["Stats"]
    assert list(as_dict) == list(schema["properties"])
    assert (as_dict["identity"], as_dict["receiveQueue"], as_dict["largeBytesInProgress"]) == ("billing.shop", 7, 9)
