"""A port-forward to a pod through the API server, as ``kubectl port-forward`` opens it, in-process.

The pod's application gRPC port listens on the pod's own 127.0.0.1, which only a process inside the
pod's network namespace can reach: the API server's ``pods/portforward`` subresource asks the pod's
kubelet to connect there. Each local connection (gRPC opens one) gets a WebSocket of its own, in
Kubernetes' ``v4.channel.k8s.io`` framing: binary frames whose first byte is the channel (0 data,
1 errors for the one port), the first frame of each channel carrying the port number in two bytes.
The relay runs on an event loop in a thread of its own, so the blocking gRPC client dials a plain
``127.0.0.1:<port>``. It needs a kubelet on the pod's node, which every real cluster has, the local one included (see
``goq.cli.goqctl.targets`` for ``--via pod-ip``).
"""

import asyncio
import sys
import threading
from types import TracebackType
from typing import Any, Final

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.stream import WsApiClient

from goq.cli.goqctl.errors import TargetError
from goq.cli.goqctl.kube import KubeSettings, connect

DATA, ERROR = 0, 1
CHUNK: Final = 64 * 1024
OPEN_TIMEOUT: Final = 30.0
"""Seconds to wait for the API server and the kubelet to open the first forward."""


def decode(frame: bytes, seen: set[int]) -> tuple[int, bytes]:
    """A frame as (channel, data), the port number dropped from the first frame of each channel."""
    if not frame:
        return ERROR, b""
    channel, data = frame[0], frame[1:]
    if channel not in seen:
        seen.add(channel)
        data = data[2:]
    return channel, data


class PortForward:
    """``with PortForward(settings, namespace, pod, port) as address``: ``127.0.0.1:<n>`` reaches the pod's port."""

    def __init__(self, settings: KubeSettings, namespace: str, pod: str, port: int) -> None:
        self.settings, self.namespace, self.pod, self.port = settings, namespace, pod, port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._address = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._spare: aiohttp.ClientWebSocketResponse | None = None
        self._told = False
        self._thread = threading.Thread(target=self._run, name="goqctl-port-forward", daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(OPEN_TIMEOUT + 5):
            self._error = TargetError(
                f"port-forward to pod {self.namespace}/{self.pod}: no answer in {OPEN_TIMEOUT:g}s"
            )
        if self._error is not None:
            self.__exit__(None, None, None)
            raise self._error
        return self._address

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception as exc:  # handed to the caller's thread by __enter__
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with connect(self.settings) as cluster:
            api = WsApiClient(cluster.configuration)
            try:
                self._spare = await asyncio.wait_for(self._open(api), OPEN_TIMEOUT)
                server = await asyncio.start_server(lambda r, w: self._relay(api, r, w), "127.0.0.1", 0, limit=CHUNK)
                self._address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
                self._ready.set()
                async with server:
                    await self._stop.wait()
            finally:
                if self._spare is not None:
                    await self._spare.close()
                await api.close()

    async def _open(self, api: WsApiClient) -> aiohttp.ClientWebSocketResponse:
        """One forward to the pod's port; a TargetError with what the API server said when it refuses."""
        where = f"pod {self.namespace}/{self.pod} port {self.port}"
        try:
            pending: Any = await k8s.CoreV1Api(api).connect_get_namespaced_pod_portforward(
                self.pod, self.namespace, ports=self.port, _preload_content=False
            )
            ws: aiohttp.ClientWebSocketResponse = await pending
        except aiohttp.WSServerHandshakeError as exc:
            raise TargetError(
                f"the API server could not open a port-forward to {where} (HTTP {exc.status}): it needs a "
                "kubelet on the pod's node and RBAC create on pods/portforward; where the sidecar's application "
                "port listens on its pod IP (GOQ_GRPC_LISTEN) and that IP is reachable, use --via pod-ip"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TargetError(f"port-forward to {where}: cannot reach the API server: {exc}") from exc
        return ws

    async def _relay(self, api: WsApiClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ws, self._spare = self._spare or await self._open(api), None
        except TargetError as exc:
            self._tell(str(exc))
            writer.close()
            return
        tasks = {asyncio.create_task(self._down(ws, writer)), asyncio.create_task(self._up(reader, ws))}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await ws.close()
            writer.close()

    async def _down(self, ws: aiohttp.ClientWebSocketResponse, writer: asyncio.StreamWriter) -> None:
        seen: set[int] = set()
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            channel, data = decode(message.data, seen)
            if data and channel == DATA:
                writer.write(data)
                await writer.drain()
            elif data:
                self._tell(f"port-forward to pod {self.namespace}/{self.pod}: {data.decode(errors='replace')}")
                return

    @staticmethod
    async def _up(reader: asyncio.StreamReader, ws: aiohttp.ClientWebSocketResponse) -> None:
        while data := await reader.read(CHUNK):
            await ws.send_bytes(bytes([DATA]) + data)

    def _tell(self, text: str) -> None:
        if not self._told:
            self._told = True
            print(f"goqctl: {text}", file=sys.stderr, flush=True)
