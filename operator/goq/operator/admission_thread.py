"""The admission server on a thread and event loop of its own.

Why: the pod webhook must answer within ``GOQ_WEBHOOK_TIMEOUT`` (5 s) on every replica at every moment. On the
operator's main loop it shared the loop with kopf, whose start (and the sweep a new leader runs first) keeps the
loop busy for seconds on a loaded node: with ``failurePolicy: Ignore`` a pod created during a leadership
takeover ran without its sidecar ("context deadline exceeded", 1 of 9 pods in an operator rollout). On its own
loop, an answer waits for nothing but the GIL, which a busy thread gives up every few milliseconds.

It starts before the operator asks for the leadership and runs whether or not this replica leads; the
operator's readiness probe (``/readyz``) is answered on this loop, so the pod is Ready exactly while reviews are
answered. ``stop`` ends it after the drain (``AdmissionServer.drain``).
"""

import asyncio
import logging
import threading
from typing import Final

from goq.errors import TemporaryError
from goq.operator.admission import AdmissionServer

log = logging.getLogger("goq.operator.admission")
START_TIMEOUT: Final = 30.0
STOP_TIMEOUT: Final = 10.0


class AdmissionThread:
    """Run ``server`` on a daemon thread with a new event loop: ``start`` returns once it listens."""

    def __init__(self, server: AdmissionServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()
        self._failure: BaseException | None = None

    @property
    def alive(self) -> bool:
        """Whether the thread still runs its loop."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` (TLS, with the certificate loaded before); raise what binding raised."""
        self._thread = threading.Thread(target=self._run, args=(host, port), name="goq-admission", daemon=True)
        self._thread.start()
        if not self._listening.wait(START_TIMEOUT):
            raise TemporaryError(f"the admission server did not listen on {host}:{port} within {START_TIMEOUT:g} s")
        if self._failure is not None:
            self._thread.join(STOP_TIMEOUT)
            raise self._failure

    def _run(self, host: str, port: int) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self.server.start(host, port))
            except BaseException as exc:  # handed to start(), in the operator's thread
                self._failure = exc
                return
            finally:
                self._listening.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def drain(self) -> None:
        """Answer on, closing each connection after its answer; ``/readyz`` says 503 (``AdmissionServer.drain``)."""
        self.server.drain()

    def stop(self) -> None:
        """Stop listening and end the thread (blocking: from async code, call it through ``asyncio.to_thread``)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            log.warning("the admission server did not stop within %g s", STOP_TIMEOUT)
