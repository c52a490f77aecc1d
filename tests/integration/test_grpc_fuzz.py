"""Property-based fuzz of the application's gRPC requests against a real sidecar: whatever arrives, the
answer is a result or a clear INVALID_ARGUMENT, never an internal error, and nothing invalid is accepted."""

import re
from collections.abc import Callable

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from goq.api.v1 import queue_manager_pb2 as pb
from goq.api.v1 import queue_manager_pb2_grpc
from goq.devenv.sidecars import SidecarProcess
from goq.identity import Address
from goq.messages import validate_headers, validate_message_id

Sidecars = Callable[..., dict[str, SidecarProcess]]
LIMIT = 4096
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE}

destinations = st.one_of(
    st.sampled_from(["billing", "billing.shop", "", ".", "Billing", "a.b.c", "x" * 60, "bill_ing", "-x"]),
    st.text(max_size=70),
)
headers = st.dictionaries(st.text(max_size=20), st.text(max_size=50), max_size=4)
requests = st.builds(
    pb.SendRequest,
    to=destinations,
    payload=st.binary(max_size=LIMIT + 100),
    persistent=st.booleans(),
    headers=headers,
    id=st.one_of(st.just(""), st.text(max_size=140)),
)


def valid(request: pb.SendRequest) -> bool:
    """What the contract accepts, decided independently of the server's answer."""
    try:
        Address.parse(request.to)
        validate_headers(dict(request.headers))
        if request.id:
            validate_message_id(request.id)
    except Exception:
        return False
    return len(request.payload) <= LIMIT


def test_any_send_request_gets_a_result_or_a_clear_refusal(sidecars: Sidecars) -> None:
    orders = sidecars("orders", GOQ_MAX_PAYLOAD_BYTES=str(LIMIT), GOQ_QUEUE_SPEC='{"sendQueueLimit": 1000000}')[
        "orders"
    ]
    channel = grpc.insecure_channel(orders.grpc_target)
    stub = queue_manager_pb2_grpc.QueueManagerStub(channel)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(requests)
    def check(request: pb.SendRequest) -> None:
        refusal: tuple[grpc.StatusCode, str] | None = None
        try:
            response = stub.Send(request, timeout=10)
        except grpc.RpcError as exc:
            refusal = (exc.code(), exc.details() or "")  # type: ignore[attr-defined]
        if refusal is not None:
            code, details = refusal
            assert code not in NEVER, f"{code}: {details}"
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert not valid(request), f"a valid request was refused: {details}"
            assert details
            return
        assert valid(request), f"an invalid request was accepted: {request!r}"
        assert response.state == "queued"
        assert re.fullmatch(r"[\x21-\x7e]{1,128}", response.id)

    try:
        check()
    finally:
        channel.close()
