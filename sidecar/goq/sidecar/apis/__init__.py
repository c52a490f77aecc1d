"""What the sidecar serves: the application's APIs, the peer port and health, each a thin layer over the engine.

- ``app_service``: the application's gRPC API (``goq.v1.QueueManager``, 127.0.0.1:7701).
- ``rest_api``: the application's REST API (127.0.0.1:7700): its handlers, over the same engine calls.
- ``rest_json``: the REST API's JSON: requests decoded strictly, answers encoded.
- ``rest_types``: the REST API's request and response types, which ``rest_json`` decodes with.
- ``rest_operations``: the REST API's routes, each with its parameters, bodies and answers.
- ``rest_limits``: the REST API's limits and patterns, used by its types.
- ``typed_json``: JSON checked against ``TypedDict`` types and their JSON Schemas written from them.
- ``openapi``: the REST API's OpenAPI document (``/openapi.json``), written from its operations and types.
- ``stats_values``: the figures of ``Stats`` (``goq.stats_fields``) read from the engine, for both APIs.
- ``http_server``: the small HTTP/1.1 server (asyncio and h11) under the REST API and the health port.
- ``http_protocol``: HTTP/1.1 on one connection (h11): the ``Request`` and ``Response`` handlers see.
- ``http_routing``: routes by method and path, and how a failure is rendered.
- ``statuses``: one table from our exception types to gRPC status, HTTP status and REST error code.
- ``standard_services``: gRPC health and reflection beside ``goq.v1.QueueManager``.
- ``malformed``: a gRPC interceptor answering undecodable requests with INVALID_ARGUMENT.
- ``peer_service``: the receiving side of the peer protocol (``goq.v1.Peer``, port 7702).
- ``peer_limits``: how much one request to the peer port may hold.
- ``health``: ``/livez``, ``/readyz`` and ``/metrics`` on the pod IP (port 7703).
"""
