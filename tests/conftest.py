"""Session fixtures that give tests real servers: a MongoDB replica set and a Kubernetes control plane.

Each server starts once per test session, on free ports, only when a selected test asks for it, and
is stopped by its own PID at the end of the session, even when tests fail or the run is interrupted
(the servers are also tied to this process, so a killed run leaves nothing behind).

To iterate quickly against servers that are already up (``goq-dev up``), set ``GOQ_TEST_MONGODB_URI``
and ``GOQ_TEST_KUBECONFIG``; the fixtures then use those instead of starting their own.
"""

import logging
import os
import shutil

# gRPC's core logs at INFO on every fork of a test process that holds channels; only errors matter here.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
# The test process holds gRPC channels while it starts sidecars: gRPC's fork handlers can then abort the
# child before it execs (grpc/grpc#43055). The children exec at once and need none of them.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from goq.devenv.kube import KubeControlPlane
from goq.devenv.mongo import MongoServer
from goq.sidecar.adapters.kube.api import KubeApi

logging.getLogger("goq.devenv").setLevel(logging.INFO)


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    """A real mongod (single-node replica set) for the whole session."""
    server = MongoServer(tmp_path_factory.mktemp("mongo"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        # The data (a 300 MB journal at least, gigabytes after the large-message tests) outlives the
        # session in pytest's kept temporary directories and fills the disk over many runs; the log stays.
        shutil.rmtree(server.workdir / "data", ignore_errors=True)


@pytest.fixture(scope="session")
def mongo_uri(request: pytest.FixtureRequest) -> str:
    """The connection string of the session's MongoDB."""
    if uri := os.environ.get("GOQ_TEST_MONGODB_URI"):
        return uri
    server: MongoServer = request.getfixturevalue("mongo_server")
    return server.uri


@pytest.fixture(scope="session")
def kube_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeControlPlane]:
    """etcd, kube-apiserver and kube-controller-manager for the whole session."""
    plane = KubeControlPlane(tmp_path_factory.mktemp("kube"))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubeconfig(request: pytest.FixtureRequest) -> Path:
    """The admin kubeconfig of the session's control plane."""
    if named := os.environ.get("GOQ_TEST_KUBECONFIG"):
        return Path(named)
    plane: KubeControlPlane = request.getfixturevalue("kube_control_plane")
    return plane.kubeconfig


@pytest.fixture(scope="session")
async def kube_api(kubeconfig: Path) -> AsyncIterator[k8s.ApiClient]:
    """A ready kubernetes-asyncio API client, authenticated as cluster admin."""
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    async with k8s.ApiClient(configuration) as api:
        yield api


@pytest.fixture
async def sidecar_kube(kubeconfig: Path) -> AsyncIterator[KubeApi]:
    """The sidecar's own small API client, with the admin kubeconfig (as ``GOQ_KUBECONFIG`` gives it)."""
    from goq.sidecar.adapters.kube import connect

    async with connect(str(kubeconfig)) as api:
        yield api


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fault-seeds",
        type=int,
        default=int(os.environ.get("GOQ_FAULT_SEEDS", "0")),
        help="also run the long fault run (tests/integration/test_faults.py) over this many seeds "
        "(or GOQ_FAULT_SEEDS); the short seeded run is always part of the suite",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by their layer's folder, so that ``-m 'not integration and not e2e'`` runs units only."""
    for item in items:
        for layer in ("integration", "e2e"):
            if f"/tests/{layer}/" in str(item.path):
                item.add_marker(getattr(pytest.mark, layer))
