"""The admission server: AdmissionReview over HTTPS in, allowed/denied (with a JSON Patch) out.

It knows nothing about pods or GoQ's rules: ``goq.cli`` hands it a mutator and a validator (the pure
functions of ``goq.webhook``). A mutator that fails unexpectedly lets the pod through unchanged (the
operator later reports the pod as not injected) rather than blocking it; a ConfigError from either
function is a refusal whose message the user sees; warnings a validator returns are shown by kubectl
(``Warning: ...``) on an admitted object.

It runs on a thread and event loop of its own (``goq.operator.admission_thread``), so that nothing the rest
of the operator does (kopf starting, a leadership takeover, a sweep) can delay an answer; ``load_certificate``
may be called from any thread.
"""

import asyncio
import base64
import concurrent.futures
import json
import logging
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from goq.errors import ConfigError
from goq.operator.metrics import operator_registry

log = logging.getLogger("goq.operator.admission")

Mutator = Callable[[Mapping[str, Any]], list[dict[str, Any]]]
"""Pod (with ``metadata.namespace`` filled in) -> JSON Patch; raises ConfigError to refuse."""
Validator = Callable[[Mapping[str, Any]], Sequence[str] | None]
"""Custom object -> warnings for the user (or ``None``); raises ConfigError to refuse."""

MUTATE_PATH: Final = "/mutate-pods"
VALIDATE_PATH: Final = "/validate-goq"
VALIDATE_NAMESPACE_PATH: Final = "/validate-namespaces"
HEALTH_PATH: Final = "/healthz"
LIVE_PATH: Final = "/livez"
READY_PATH: Final = "/readyz"
METRICS_PATH: Final = "/metrics"


def _response(
    uid: str,
    allowed: bool,
    message: str | None = None,
    patch: list[dict[str, Any]] | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if warnings:
        response["warnings"] = list(warnings)
    if message is not None:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": message}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def review_mutation(review: Mapping[str, Any], mutator: Mutator, outcomes: Counter[str]) -> dict[str, Any]:
    """Answer one pod AdmissionReview."""
    request = review.get("request") or {}
    uid = str(request.get("uid", ""))
    pod = dict(request.get("object") or {})
    pod["metadata"] = {**(pod.get("metadata") or {}), "namespace": request.get("namespace")}
    try:
        patch = mutator(pod)
    except ConfigError as exc:
        outcomes["refused"] += 1
        return _response(uid, False, str(exc))
    except Exception:  # never block a pod because of our own bug; the operator reports it as not injected
        outcomes["error"] += 1
        log.exception(
            "mutating pod %s/%s failed; letting it through unchanged", request.get("namespace"), request.get("name")
        )
        return _response(uid, True)
    outcomes["injected" if patch else "untouched"] += 1
    return _response(uid, True, patch=patch)


def review_validation(
    review: Mapping[str, Any], validator: Validator, outcomes: Counter[str], unchanged_spec_passes: bool = True
) -> dict[str, Any]:
    """Answer one object's AdmissionReview. With ``unchanged_spec_passes`` (custom objects), an update that
    leaves the spec alone always passes (so metadata and finalizer changes never get stuck on an object that an
    older rule allowed); without it (namespaces, whose labels are what is checked) every update is validated."""
    request = review.get("request") or {}
    uid = str(request.get("uid", ""))
    obj = request.get("object") or {}
    old = request.get("oldObject") or {}
    if unchanged_spec_passes and request.get("operation") == "UPDATE" and old.get("spec") == obj.get("spec"):
        outcomes["unchanged"] += 1
        return _response(uid, True)
    try:
        warnings = validator(obj) or ()
    except ConfigError as exc:
        outcomes["refused"] += 1
        return _response(uid, False, str(exc))
    outcomes["valid"] += 1
    return _response(uid, True, warnings=warnings)


def _passes(_: Mapping[str, Any]) -> None:
    return None


class AdmissionServer:
    """An aiohttp HTTPS server; its certificate can be swapped while it runs (``load_certificate``)."""

    def __init__(self, mutator: Mutator, validator: Validator, namespace_validator: Validator | None = None) -> None:
        self.mutator = mutator
        self.validator = validator
        self.namespace_validator = namespace_validator or _passes
        """Namespaces the registration sends (a wrong ``goq.io/injection`` value); none: every one passes."""
        self.outcomes: Counter[str] = Counter()
        """Count of answers by outcome (injected, untouched, refused, error, valid, unchanged)."""
        self.registry = operator_registry(self.outcomes)
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.draining = False
        """Stopping: answer every request, then close its connection (``drain``)."""

    def load_certificate(self, cert_file: str, key_file: str) -> None:
        """Serve with this certificate from the next handshake on. Called from another thread while the server
        runs, the load happens on the server's loop (no handshake uses the context meanwhile) and this waits
        for it, so the files may be removed as soon as it returns."""
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread or loop.is_closed():
            self.ssl.load_cert_chain(cert_file, key_file)
            return
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        def load() -> None:
            try:
                self.ssl.load_cert_chain(cert_file, key_file)
            except BaseException as exc:  # handed to the caller's thread
                done.set_exception(exc)
            else:
                done.set_result(None)

        loop.call_soon_threadsafe(load)
        done.result(timeout=30)

    def drain(self) -> None:
        """Go on answering, but close each connection after its answer, so that the API server dials again.

        When this replica's pod is deleted, Kubernetes takes it out of the webhook Service's endpoints at
        the same moment as it signals the process. The API server keeps its kept-alive connection to this
        pod, though, and a review sent on it as the server closes ends in EOF: with ``failurePolicy:
        Ignore``, a pod created then would run without its sidecar (seen once in 16 pods by
        ``tests/e2e/test_operator_rollout.py``). A new connection goes to a replica that stays."""
        self.draining = True

    def app(self) -> web.Application:
        """The routes, for serving or for tests."""
        app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[self._closing_when_draining])
        app.router.add_post(MUTATE_PATH, self._mutate)
        app.router.add_post(VALIDATE_PATH, self._validate)
        app.router.add_post(VALIDATE_NAMESPACE_PATH, self._validate_namespace)
        app.router.add_get(HEALTH_PATH, self._health)
        app.router.add_get(LIVE_PATH, self._live)
        app.router.add_get(READY_PATH, self._health)
        app.router.add_get(METRICS_PATH, self._metrics)
        return app

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` with TLS, on the running loop (from then on, the server's loop)."""
        self._loop, self._thread = asyncio.get_running_loop(), threading.current_thread()
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=self.ssl).start()
        log.info("admission server listening on https://%s:%d", host, port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _closing_when_draining(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if self.draining:
            response.force_close()
        return response

    async def _read(self, request: web.Request) -> Mapping[str, Any] | None:
        try:
            review = await request.json()
        except ValueError:
            return None
        return review if isinstance(review, dict) else None

    async def _mutate(self, request: web.Request) -> web.Response:
        review = await self._read(request)
        if review is None:
            return web.json_response({"error": "expected an AdmissionReview JSON object"}, status=400)
        return web.json_response(review_mutation(review, self.mutator, self.outcomes))

    async def _validate(self, request: web.Request) -> web.Response:
        review = await self._read(request)
        if review is None:
            return web.json_response({"error": "expected an AdmissionReview JSON object"}, status=400)
        return web.json_response(review_validation(review, self.validator, self.outcomes))

    async def _validate_namespace(self, request: web.Request) -> web.Response:
        review = await self._read(request)
        if review is None:
            return web.json_response({"error": "expected an AdmissionReview JSON object"}, status=400)
        return web.json_response(
            review_validation(review, self.namespace_validator, self.outcomes, unchanged_spec_passes=False)
        )

    async def _health(self, _: web.Request) -> web.Response:
        """``/readyz`` (and ``/healthz``, as before): answered on the loop that answers reviews, over the same
        TLS listener, so a 200 means a review sent now is answered; 503 while draining (no new connection
        should come here)."""
        if self.draining:
            return web.json_response({"status": "draining", "outcomes": dict(self.outcomes)}, status=503)
        return web.json_response({"status": "ok", "outcomes": dict(self.outcomes)})

    async def _live(self, _: web.Request) -> web.Response:
        """``/livez``: the admission loop answers (a draining replica is still alive)."""
        return web.json_response({"status": "draining" if self.draining else "ok"})

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
