"""The bare gRPC hop: the ceiling for one Python hop, with no queueing, storage or acknowledgement at all.

``python bench/grpc_hop.py --port P`` serves two raw-bytes methods on 127.0.0.1: ``/hop.Hop/Send`` takes a
client stream of batches, ``/hop.Hop/Receive`` streams them to the one consumer, through a small bounded
in-memory hand-over. ``HopSystem`` starts and stops that server as the benchmark runs it.
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from goq.devenv import processes
from goq.devenv.ports import free_port, is_listening


async def serve(port: int) -> None:
    handover: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)

    async def send(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:  # type: ignore[type-arg]
        async for batch in requests:
            await handover.put(batch)
        return b""

    async def receive(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:  # type: ignore[type-arg]
        yield b""  # tells the consumer it is attached
        while True:
            yield await handover.get()

    handler = grpc.method_handlers_generic_handler(
        "hop.Hop",
        {
            "Send": grpc.stream_unary_rpc_method_handler(send),
            "Receive": grpc.unary_stream_rpc_method_handler(receive),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


class HopSystem:
    """One hop server process; producer and consumer are peer_clients.py with ``--system hop``."""

    name = "gRPC hop (bare)"
    system = "hop"

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="goq-bench-hop-"))
        self.port = free_port()
        self.server: processes.ServerProcess | None = None

    def start(self) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--port", str(self.port)]
        self.server = processes.start("grpc-hop", argv, self.workdir / "hop.log")
        processes.wait_until("listening", lambda: is_listening(self.port), self.server, timeout=30)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def pids(self) -> dict[str, int]:
        return {"hop": self.server.pid} if self.server else {}

    def stop(self) -> None:
        if self.server:
            self.server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
