"""A node's work directory must leave room for the kubelet's sockets: refused up front, not a kubelet crash."""

from pathlib import Path

import pytest

from goq.devenv.errors import DevEnvError
from goq.devenv.node.node import LONGEST_SOCKET, MAX_SOCKET_PATH, RealNode


def test_a_work_directory_too_long_for_the_kubelets_sockets_is_refused_with_the_limit() -> None:
    too_long = Path("/tmp") / ("d" * (MAX_SOCKET_PATH - len(LONGEST_SOCKET)))
    with pytest.raises(DevEnvError, match=r"too long: the kubelet makes sockets under it.* at most 70 characters"):
        RealNode(too_long)


def test_a_work_directory_that_leaves_room_for_the_sockets_is_taken() -> None:
    fits = Path("/tmp") / ("d" * (MAX_SOCKET_PATH - len(LONGEST_SOCKET) - len("/tmp/")))
    assert RealNode(fits).workdir == fits
