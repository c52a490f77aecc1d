"""The peer port's bounds: read from the environment with sane defaults and errors naming the variable, and
handed to gRPC as the options that enforce them (connections, streams, headers, pings, handshakes, idle)."""

import base64
import re

import pytest

from goq.errors import ConfigError
from goq.sidecar.apis.peer_limits import (
    ABSOLUTE_MAX_METADATA,
    HANDSHAKE_TIMEOUT_MS,
    IDLE_CONNECTION_MS,
    MAX_METADATA,
    PING_STRIKES,
    peer_server_options,
    request_bytes_limit,
)
from goq.sidecar.settings import SidecarSettings

KEY = base64.b64encode(b"k" * 32).decode()


def settings(**env: str) -> SidecarSettings:
    return SidecarSettings.from_env({"GOQ_IDENTITY": "orders", "GOQ_HMAC_KEYS": f"k1={KEY}", **env})


def test_the_peer_ports_bounds_default_to_what_a_large_cluster_needs() -> None:
    s = settings()
    assert (s.peer_max_connections, s.peer_max_streams, s.peer_max_calls) == (1000, 100, 2000)


def test_the_peer_ports_bounds_are_read_from_the_environment() -> None:
    s = settings(GOQ_PEER_MAX_CONNECTIONS="20", GOQ_PEER_MAX_STREAMS="8", GOQ_PEER_MAX_CALLS="30")
    assert (s.peer_max_connections, s.peer_max_streams, s.peer_max_calls) == (20, 8, 30)
    assert s.unknown == ()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GOQ_PEER_MAX_CONNECTIONS": "0"}, "GOQ_PEER_MAX_CONNECTIONS must be an integer from 1 to 100000, got '0'"),
        ({"GOQ_PEER_MAX_STREAMS": "4"}, "GOQ_PEER_MAX_STREAMS must be an integer from 8 to 10000, got '4'"),
        ({"GOQ_PEER_MAX_CALLS": "many"}, "GOQ_PEER_MAX_CALLS must be an integer from 1 to 1000000, got 'many'"),
    ],
)
def test_a_bound_out_of_range_names_the_variable_and_what_it_accepts(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings(**env)


def test_the_peer_servers_options_carry_every_bound_once() -> None:
    options = peer_server_options(4 * 1024 * 1024, max_connections=300, max_streams=50)
    names = [name for name, _ in options]
    assert len(names) == len(set(names)), names
    given = dict(options)
    assert given["grpc.max_allowed_incoming_connections"] == 300
    assert given["grpc.max_concurrent_streams"] == 50
    assert given["grpc.max_receive_message_length"] == request_bytes_limit(4 * 1024 * 1024)
    assert (given["grpc.max_metadata_size"], given["grpc.absolute_max_metadata_size"]) == (
        MAX_METADATA,
        ABSOLUTE_MAX_METADATA,
    )
    assert given["grpc.http2.max_ping_strikes"] == PING_STRIKES > 0  # 0 would let a ping flood go on for ever
    assert given["grpc.server_handshake_timeout_ms"] == HANDSHAKE_TIMEOUT_MS
    assert given["grpc.max_connection_idle_ms"] == IDLE_CONNECTION_MS
    # a sender's keepalive pings (every 20 s) come no sooner than the server allows
    assert given["grpc.http2.min_ping_interval_without_data_ms"] <= 20_000
