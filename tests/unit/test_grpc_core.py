"""The sidecar picks gRPC core's iomgr I/O engine before grpcio loads, unless the deployer chose."""

import subprocess
import sys

import grpc  # noqa: F401  loaded here, as in any process that imported it before choosing
import pytest

from goq.errors import ConfigError
from goq.sidecar.grpc_core import IOMGR, choose_io_engine


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={}, check=True)


def test_the_sidecar_entry_point_loads_grpc_only_when_it_runs() -> None:
    assert run("import sys, goq.cli.sidecar; print('grpc' in sys.modules)").stdout.strip() == "False"


def test_the_iomgr_engine_is_asked_for_when_nothing_was_set() -> None:
    done = run(
        "import os; from goq.sidecar.grpc_core import choose_io_engine; choose_io_engine(); import grpc; "
        "grpc.server(None).add_insecure_port('127.0.0.1:0'); print(os.environ['GRPC_EXPERIMENTS'])"
    )
    assert done.stdout.strip() == IOMGR
    assert all(part.startswith("-event_engine") for part in IOMGR.split(","))
    assert "Unknown experiment" not in done.stderr  # this grpcio still knows every switch we turn


@pytest.mark.parametrize("chosen", ["", "event_engine_client"])
def test_the_deployers_own_choice_wins(chosen: str) -> None:
    environ = {"GRPC_EXPERIMENTS": chosen}
    choose_io_engine(environ)
    assert environ == {"GRPC_EXPERIMENTS": chosen}


def test_choosing_after_grpc_was_loaded_is_an_error_not_a_silent_no_op() -> None:
    with pytest.raises(ConfigError, match="before grpcio is imported"):
        choose_io_engine({})
