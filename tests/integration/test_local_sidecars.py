"""Local sidecar processes (tests, benchmarks, demo) start even when another process took a chosen port."""

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from goq.devenv.errors import DevEnvError
from goq.devenv.sidecars import SidecarProcess, hmac_keys, local_sidecars

# No MongoDB: transient only, quick to start.
ENV = {"GOQ_HMAC_KEYS": hmac_keys({"k1": b"k" * 32}), "GOQ_QUEUE_SPEC": '{"poisonQueue": {"type": "log"}}'}


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    (one,) = local_sidecars(["orders"], tmp_path, ENV).values()
    try:
        yield one
    finally:
        one.kill()


def squat(port: int) -> socket.socket:
    """Listen on ``port`` as some other process might have."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.mark.parametrize("port", ["health_port", "rest_port", "grpc_port"])
def test_a_first_start_moves_off_a_taken_application_port(sidecar: SidecarProcess, port: str) -> None:
    taken = getattr(sidecar, port)
    with squat(taken):
        sidecar.start()
        assert getattr(sidecar, port) != taken
        assert sidecar.is_ready()
        assert f"cannot listen on 127.0.0.1:{taken}" in sidecar.log()
        assert sidecar.starts == 2


def test_a_taken_peer_port_fails_the_start_naming_it(sidecar: SidecarProcess) -> None:
    taken = sidecar.peer_port
    with squat(taken), pytest.raises(DevEnvError, match=f"cannot listen on 127.0.0.1:{taken} for the peer API"):
        sidecar.start()
    assert sidecar.peer_port == taken  # the others' peer maps name it


def test_a_restart_keeps_its_ports_even_if_one_is_taken(sidecar: SidecarProcess) -> None:
    sidecar.start()
    sidecar.stop()
    taken = sidecar.health_port
    with squat(taken), pytest.raises(DevEnvError, match=f"cannot listen on 127.0.0.1:{taken} for the health API"):
        sidecar.start()
    assert sidecar.health_port == taken  # its clients know it by these ports
