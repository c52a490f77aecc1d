"""The REST API's OpenAPI 3.1 document, served at ``/openapi.json``: written, not kept by hand.

Its paths come from the table the server routes with (``rest_operations``), its schemas from the types the
handlers decode and encode with (``rest_types`` through ``typed_json``), so what the document allows is what the
server accepts; the schema-driven fuzz test (tests/integration/test_rest_fuzz.py) holds the two together.
"""

from typing import Any

from goq.sidecar.apis.http_server import BODY_TIMEOUT, HEAD_TIMEOUT
from goq.sidecar.apis.rest_operations import BINARY, JSON, OPERATIONS, Operation
from goq.sidecar.apis.rest_types import REQUESTS
from goq.sidecar.apis.typed_json import Schemas, fields

_RAW: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}


def _content(body: Any, schemas: Schemas) -> dict[str, Any]:
    if body == BINARY:
        return _RAW
    if body == JSON:
        return {}
    return {"schema": schemas.of(body)}


def _parameters(where: str, tp: Any, schemas: Schemas) -> list[dict[str, Any]]:
    found = []
    for name, (bare, metadata) in fields(tp).items():
        schema = schemas.of(bare, metadata)
        parameter: dict[str, Any] = {"name": name, "in": where}
        if where == "path":
            parameter["required"] = True
        if "description" in schema:
            parameter["description"] = schema.pop("description")
        found.append({**parameter, "schema": schema})
    return found


def _operation(op: Operation, schemas: Schemas) -> dict[str, Any]:
    written: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.description:
        written["description"] = op.description
    parameters = []
    if op.path_params is not None:
        parameters += _parameters("path", op.path_params, schemas)
    if op.query is not None:
        parameters += _parameters("query", op.query, schemas)
    if parameters:
        written["parameters"] = parameters
    if op.bodies:
        written["requestBody"] = {
            "required": op.body_required,
            "content": {media: _content(body, schemas) for media, body in op.bodies.items()},
        }
    written["responses"] = {
        str(status): {"description": answer.description}
        | ({"content": {_media(answer.body): _content(answer.body, schemas)}} if answer.body is not None else {})
        for status, answer in op.answers.items()
    }
    return written


def _media(body: Any) -> str:
    return BINARY if body == BINARY else JSON


def openapi_document(max_payload: int) -> dict[str, Any]:
    """The document for a sidecar whose payload limit is ``max_payload`` bytes."""
    schemas = Schemas(max_payload, closed=REQUESTS)
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "GoQ sidecar application API",
            "version": "v1",
            "description": (
                "What an application asks of its GoQ sidecar on 127.0.0.1:7700. The same calls exist over "
                'gRPC (goq.v1.QueueManager on 127.0.0.1:7701). Errors are {"error": {"code", "message"}}. '
                "JSON bodies are UTF-8 without a byte-order mark, with no key twice in one object; others "
                f"are refused (400). A request head must arrive within {HEAD_TIMEOUT:g} s and a body may not "
                f"pause for {BODY_TIMEOUT:g} s (408, then the connection closes)."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas.components},
    }
