"""A send whose outbox write fails while its early delivery has no known outcome is decided by the receiver's
answer, never refused while the receiver may still store it (``Admission.not_stored``).

Sender and receiver each have a mongod of their own. Both are frozen (SIGSTOP): the sender's write fails at
its ``GOQ_STORE_TIMEOUT``; the receiver's write of the early delivery waits, so the delivery attempt times
out (``attemptTimeout``) and repeats are answered "still being stored". The receiver's mongod resumes before
the sender has given up asking: the receiver stores the message, and the send must be answered accepted.
Refusing it (what the sidecar did before) delivered a refused message.
"""

import asyncio
import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from goq.api.v1 import queue_manager_pb2 as pb
from goq.devenv.mongo import MongoServer
from goq.devenv.sidecars import SidecarProcess

from .conftest import App

Sidecars = Callable[..., dict[str, SidecarProcess]]
Apps = Callable[[SidecarProcess], App]

POLICY = json.dumps({"maxAttempts": 1000, "initialBackoff": "100ms", "maxBackoff": "200ms", "attemptTimeout": "500ms"})
SENDER_STORE_TIMEOUT = 2.0
RECEIVER_FROZEN = 3.0
"""Seconds the receiver's mongod stays frozen: past the sender's store timeout, within its settle time
(``GOQ_STORE_TIMEOUT`` plus ``attemptTimeout``) and the receiver's own store timeout."""


@pytest.fixture
def mongods(tmp_path: Path) -> Iterator[dict[str, MongoServer]]:
    servers = {name: MongoServer(tmp_path / f"mongo-{name}") for name in ("orders", "billing")}
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            if server.process is not None:
                os.kill(server.process.pid, signal.SIGCONT)
            server.stop()


@pytest.fixture
def mongo_uri(mongods: dict[str, MongoServer]) -> str:
    return mongods["orders"].uri


def freeze(server: MongoServer, *, frozen: bool) -> None:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


async def test_a_send_whose_write_fails_is_accepted_when_the_receiver_stores_its_timed_out_delivery_after_all(
    mongods: dict[str, MongoServer], sidecars: Sidecars, apps: Apps
) -> None:
    group = sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=POLICY)
    group["orders"].env["GOQ_STORE_TIMEOUT"] = f"{SENDER_STORE_TIMEOUT}s"
    group["billing"].env.update(GOQ_MONGODB_URI=mongods["billing"].uri, GOQ_STORE_TIMEOUT="10s")
    for sidecar in group.values():
        sidecar.start()
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.stub.Send(pb.SendRequest(to="billing", payload=b"before"))
    assert [m.payload for m in await billing.receive(1, within=30)] == [b"before"]

    for server in mongods.values():
        freeze(server, frozen=True)
    sending = asyncio.ensure_future(orders.stub.Send(pb.SendRequest(to="billing", payload=b"early"), timeout=30))
    await asyncio.sleep(RECEIVER_FROZEN)
    freeze(mongods["billing"], frozen=False)
    try:
        answer: pb.SendResponse | str = await sending
    except grpc.aio.AioRpcError as exc:
        answer = f"{exc.code().name}: {exc.details()}"
    freeze(mongods["orders"], frozen=False)

    got = [m.payload for m in await billing.receive(1, within=30)]
    assert got == [b"early"], "the receiver did not store the message: the scenario did not happen"
    assert not isinstance(answer, str), f"refused, and delivered all the same: {answer}"
    assert answer.id


RECEIVER_STORE_TIMEOUT = 8.0
"""The receiver's ``GOQ_STORE_TIMEOUT``: its write of a try waits this long for its stopped mongod, far
longer than the sender asks about that try (its own ``GOQ_STORE_TIMEOUT`` of 1 s plus ``attemptTimeout``)."""
GAVE_UP = "may still reach their destination"
"""The sender's warning when its asking ended without an answer for a message whose write failed."""


async def until_logged(sidecar: SidecarProcess, text: str, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while text not in sidecar.log():
        assert asyncio.get_running_loop().time() < deadline, f"{sidecar.name} never logged {text!r}"
        await asyncio.sleep(0.1)


async def test_a_send_whose_delivery_the_sender_gave_up_asking_about_is_not_refused_and_arrives_once_accepted(
    mongods: dict[str, MongoServer], sidecars: Sidecars, apps: Apps
) -> None:
    """Both mongods stopped: the sender's write fails; the receiver's write of the early delivery fails
    later (its longer store timeout); the sender's next try makes the receiver write again, and that write
    waits for its mongod longer than the sender asks. The receiver's mongod comes back in time for that
    write: the message arrives. The sender refused it when it gave up asking (issue 16, replica-set seed 7:
    10 refused sends delivered); it must keep it instead (writing it again until its own mongod is back) and
    answer accepted."""
    group = sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=POLICY)
    group["orders"].env["GOQ_STORE_TIMEOUT"] = "1s"
    group["billing"].env.update(GOQ_MONGODB_URI=mongods["billing"].uri, GOQ_STORE_TIMEOUT=f"{RECEIVER_STORE_TIMEOUT}s")
    for sidecar in group.values():
        sidecar.start()
    orders, billing = apps(group["orders"]), apps(group["billing"])
    await orders.stub.Send(pb.SendRequest(to="billing", payload=b"before"))
    assert [m.payload for m in await billing.receive(1, within=30)] == [b"before"]

    for server in mongods.values():
        await asyncio.to_thread(server.stop)
    sending = asyncio.ensure_future(orders.stub.Send(pb.SendRequest(to="billing", payload=b"early"), timeout=90))
    # The receiver's first write fails after its store timeout; the sender's next try starts another one,
    # which the sender gives up waiting for: the receiver's mongod returns while that write still waits.
    await until_logged(group["orders"], GAVE_UP, within=4 * RECEIVER_STORE_TIMEOUT)
    await asyncio.to_thread(mongods["billing"].start)
    got = [m.payload for m in await billing.receive(1, within=30)]
    assert got == [b"early"], "the receiver did not store the message: the scenario did not happen"
    await asyncio.to_thread(mongods["orders"].start)
    try:
        answer: pb.SendResponse | str = await sending
    except grpc.aio.AioRpcError as exc:
        answer = f"{exc.code().name}: {exc.details()}"
    assert not isinstance(answer, str), f"refused, and delivered all the same: {answer}"
    assert answer.id
    assert await billing.receive(1, within=3) == [], "delivered twice: the receiver did not recognise it"
