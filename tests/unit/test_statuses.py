"""The one table of refusals (``goq.sidecar.apis.statuses``), held to the table ``docs/api.md`` documents: every
exception type the sidecar defines answers as documented over gRPC and REST, and a new type fails here
until it is given its answer on purpose."""

import importlib
import json
import pkgutil
import re
from pathlib import Path

import grpc
import pytest

import goq.sidecar
from goq.client.errors import ClientError, InvalidMessageError, MessageNotFoundError, UnavailableError, error_for
from goq.client.errors import QueueFullError as ClientQueueFullError
from goq.errors import ConfigError, GoQError, PermanentError, TemporaryError
from goq.sidecar.apis.app_service import _batch_result
from goq.sidecar.apis.http_protocol import HttpError, Request
from goq.sidecar.apis.openapi import openapi_document
from goq.sidecar.apis.rest_api import json_errors
from goq.sidecar.apis.statuses import ERROR_CODES, HTTP_ONLY, STATUSES, status_of
from goq.sidecar.domain.errors import NotFoundError, PayloadTooLargeError, QueueFullError
from goq.sidecar.ports.poison import PoisonSinkError
from goq.sidecar.ports.stores import StoreUnavailableError

API_DOC = Path(__file__).parents[2] / "docs" / "api.md"

EXPECTED: dict[str, int] = {
    "goq.errors.GoQError": 500,
    "goq.errors.ConfigError": 400,
    "goq.errors.TemporaryError": 503,
    "goq.errors.PermanentError": 500,
    "goq.messages.MalformedMessageError": 500,  # a bad envelope: a peer's is refused there; a stored one, our fault
    "goq.signing.SignatureError": 500,  # a bad signature: refused to the peer, never raised to an app
    "goq.signing.NoKeyError": 503,  # no HMAC key for the destination's namespace yet (a large send): retry later
    "goq.spiffe.IdentityError": 400,
    "goq.sidecar.domain.errors.NotFoundError": 404,
    "goq.sidecar.domain.errors.PayloadTooLargeError": 413,
    "goq.sidecar.domain.errors.QueueFullError": 429,
    "goq.sidecar.adapters.kube.api.KubeApiError": 500,  # the sidecar's status reports; never reaches an application
    "goq.sidecar.apis.peer_service.BatchTooLargeError": 500,  # peer API only: RESOURCE_EXHAUSTED there, to a peer
    "goq.sidecar.adapters.peering.PeerUnavailableError": 503,
    "goq.sidecar.ports.poison.PoisonSinkError": 503,
    "goq.sidecar.adapters.resolving.UnresolvableError": 503,
    "goq.sidecar.ports.stores.StoreUnavailableError": 503,
    "goq.sidecar.adapters.stores.withdrawal_journal.JournalError": 503,
}
"""The HTTP status (a row of the documented table) each of our exception types is meant to be answered with."""

NOT_THE_SIDECARS = ("goq.client", "goq.cli", "goq.devenv", "goq.operator", "goq.webhook")
"""Packages whose exceptions never reach the sidecar's APIs (the client's own, the CLIs', the operator's)."""


def documented() -> dict[int, tuple[str, str | None]]:
    """The "Errors" table of docs/api.md: HTTP status -> (``error.code``, gRPC status name or None)."""
    section = API_DOC.read_text().split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d{3}) \| `(\w+)` \| .* \| (?:`(\w+)`.*|—) \|$", section, re.MULTILINE)
    return {int(status): (code, grpc_name or None) for status, code, grpc_name in rows}


def sidecar_error_types() -> dict[str, type[GoQError]]:
    """Every GoQError subclass the sidecar's modules define or import, by qualified name."""
    for module in pkgutil.walk_packages(goq.sidecar.__path__, "goq.sidecar."):
        importlib.import_module(module.name)
    found: dict[str, type[GoQError]] = {}
    kinds: list[type[GoQError]] = [GoQError]
    while kinds:
        kind = kinds.pop()
        name = f"{kind.__module__}.{kind.__qualname__}"
        if name.startswith("goq.") and not name.startswith(NOT_THE_SIDECARS):
            found[name] = kind
        kinds.extend(kind.__subclasses__())
    return found


def test_the_documented_table_has_every_status_the_rest_api_refuses_with_and_no_other() -> None:
    table = documented()
    assert {status: code for status, (code, _) in table.items()} == ERROR_CODES
    for status in HTTP_ONLY:
        assert table[status][1] is None, f"{status} is the HTTP server's own: docs/api.md must give it no gRPC status"


def test_each_entry_of_the_table_is_documented_with_its_grpc_status() -> None:
    table = documented()
    for kind, status in STATUSES.items():
        assert table[status.http] == (status.code, status.grpc.name), kind.__name__


def test_every_error_type_of_the_sidecar_answers_as_documented() -> None:
    """A new exception type fails here until it is in EXPECTED (and so, on purpose, in the table and docs)."""
    kinds = sidecar_error_types()
    assert set(kinds) == set(EXPECTED), (
        "exception types without a decided answer (add to EXPECTED, and to goq.sidecar.apis.statuses.STATUSES "
        f"if their base's answer is wrong): {sorted(set(kinds) - set(EXPECTED))}; "
        f"gone: {sorted(set(EXPECTED) - set(kinds))}"
    )
    table = documented()
    for name, kind in kinds.items():
        status = status_of(kind.__new__(kind))  # only the type counts; no constructor arguments needed
        code, grpc_name = table[EXPECTED[name]]
        assert (status.http, status.code, status.grpc.name) == (EXPECTED[name], code, grpc_name), name


@pytest.mark.parametrize(
    ("error", "http", "code", "grpc_code"),
    [
        (ConfigError("bad"), 400, "bad_request", grpc.StatusCode.INVALID_ARGUMENT),
        (PayloadTooLargeError("big"), 413, "payload_too_large", grpc.StatusCode.INVALID_ARGUMENT),
        (QueueFullError("full"), 429, "queue_full", grpc.StatusCode.RESOURCE_EXHAUSTED),
        (StoreUnavailableError("down"), 503, "unavailable", grpc.StatusCode.UNAVAILABLE),
        (PoisonSinkError("MongoDB poison sink failed"), 503, "unavailable", grpc.StatusCode.UNAVAILABLE),
        (TemporaryError("later", delay=1.0), 503, "unavailable", grpc.StatusCode.UNAVAILABLE),
        (NotFoundError("gone"), 404, "not_found", grpc.StatusCode.NOT_FOUND),
        (PermanentError("broken"), 500, "internal", grpc.StatusCode.INTERNAL),
        (GoQError("unexpected"), 500, "internal", grpc.StatusCode.INTERNAL),
    ],
)
def test_both_apis_refuse_an_error_the_same_way(
    error: GoQError, http: int, code: str, grpc_code: grpc.StatusCode
) -> None:
    response = json_errors(Request("POST", "/v1/messages", [], {}), error)
    assert (response.status, json.loads(response.body)) == (http, {"error": {"code": code, "message": str(error)}})
    (result,) = _batch_result([error]).results
    assert (result.error.code, result.error.message) == (grpc_code.name, str(error))
    assert status_of(error).grpc is grpc_code  # what a unary call aborts with


@pytest.mark.parametrize(
    ("status", "code"), [(405, "method_not_allowed"), (408, "request_timeout"), (417, "bad_request")]
)
def test_the_http_servers_own_refusals_have_their_documented_codes(status: int, code: str) -> None:
    response = json_errors(Request("POST", "/v1/messages", [], {}), HttpError(status, "no"))
    assert (response.status, json.loads(response.body)["error"]["code"]) == (status, code)


def test_the_openapi_document_lists_every_error_code() -> None:
    schema = openapi_document(1024)["components"]["schemas"]["Error"]
    assert set(schema["properties"]["error"]["properties"]["code"]["enum"]) == set(ERROR_CODES.values())


CLIENT_ERRORS: dict[str, type[ClientError]] = {
    "INVALID_ARGUMENT": InvalidMessageError,
    "NOT_FOUND": MessageNotFoundError,
    "RESOURCE_EXHAUSTED": ClientQueueFullError,
    "UNAVAILABLE": UnavailableError,
    "INTERNAL": ClientError,
}


def test_the_python_client_turns_every_grpc_status_of_the_table_into_its_exception() -> None:
    """The client may not import the sidecar, so it keeps its own map back from gRPC; it must cover the table."""
    assert {status.grpc.name for status in STATUSES.values()} == set(CLIENT_ERRORS)
    for name, kind in CLIENT_ERRORS.items():
        error = error_for(name, "why")
        assert (type(error), error.code, str(error)) == (kind, name, "why")
