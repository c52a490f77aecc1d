"""Requests generated from the REST API's own OpenAPI document, sent to a real sidecar process.

Schemathesis draws valid (positive) and schema-violating (negative) requests for every operation.
Whatever it sends, the sidecar must answer without a 5xx, as the document says (status, content type,
body schema), refuse every request the document forbids, and have sent exactly the messages it
answered 202 for. A valid request is refused only for what the document cannot express. A valid
long-poll ``wait`` is cut to 0 so that the run stays short.
"""

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from goq.devenv.sidecars import SidecarProcess

Sidecars = Callable[..., dict[str, SidecarProcess]]

EXAMPLES = 40
"""Per operation and mode: enough to reach every field's edge cases, small enough for two cores."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
CONTENT_TYPE_RULES = {
    "a JSON send takes its fields from the body, not from the query string",
    'query parameter "to" is required: "<identity>" or "<identity>.<namespace>"',
}
CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413]}}}


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        document: dict[str, Any] = json.load(response)
        return document


def _seconds(value: object) -> bool:
    """Whether ``value`` is a wait the server accepts (0 to 60 seconds)."""
    try:
        return 0 <= float(str(value)) <= 60
    except ValueError:
        return False


def _persistent(case: schemathesis.Case) -> bool:
    if case.media_type == "application/json":
        return bool(case.body.get("persistent", True))
    return str(case.query.get("persistent", "true")).lower() == "true"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_generated_requests_get_documented_answers_and_forbidden_ones_are_refused(
    mode: GenerationMode, sidecars: Sidecars
) -> None:
    sidecar = sidecars("orders", GOQ_MAX_PAYLOAD_BYTES="4096")["orders"]
    document = _get_json(f"{sidecar.rest_url}/openapi.json")
    schema = schemathesis.openapi.from_dict(document, config=SchemathesisConfig.from_dict(CONFIG))
    operations = [
        schema[path][method.upper()]
        for path, item in document["paths"].items()
        for method, definition in item.items()
        # Negative mode needs something to break: operations without input have no wrong request.
        if mode is GenerationMode.POSITIVE or "parameters" in definition or "requestBody" in definition
    ]
    assert len(operations) == (10 if mode is GenerationMode.POSITIVE else 8)
    accepted: set[tuple[str, bool]] = set()
    """(id, persistent) of each 202: an id is an idempotency key within its store, persistent or memory."""

    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],  # no shrinking: a failure prints its request as curl, which is enough
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def exchange(case: schemathesis.Case) -> None:
            if case.method == "GET" and case.path == "/v1/messages" and _seconds(case.query.get("wait")):
                case.query["wait"] = 0
            response = case.call(base_url=sidecar.rest_url, timeout=10)
            case.validate_response(response, checks=CHECKS)
            if mode is GenerationMode.POSITIVE and response.status_code == 400:
                # The one rule the document cannot express: which query parameters go with which body.
                assert response.json()["error"]["message"] in CONTENT_TYPE_RULES, case.as_curl_command()
            if case.method == "POST" and case.path == "/v1/messages" and response.status_code == 202:
                accepted.add((response.json()["id"], _persistent(case)))

        exchange()

    stats = _get_json(f"{sidecar.rest_url}/v1/stats")
    assert stats["sent"] == len(accepted)
