"""The few Kubernetes API calls a sidecar makes, over a small HTTP client: get, merge-patch, list and watch.

Why not ``kubernetes_asyncio``: importing it costs a sidecar about 30 MB of memory in every pod, for
three calls on one resource (and aiohttp's client 11 MB more: see ``http_client``). Credentials: the
pod's ServiceAccount (token re-read as it rotates) in a cluster; elsewhere a kubeconfig with a token
or a client certificate.
"""

import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from goq.errors import ConfigError, GoQError
from goq.sidecar.adapters.kube.http_client import HttpClientError, Reply, request

SERVICE_ACCOUNT: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD: Final = 60.0
"""Seconds a read ServiceAccount token is used before the (rotated) file is read again."""

Obj = dict[str, Any]


class KubeApiError(GoQError):
    """The API server answered with an error status (``status``, ``reason``), or could not be reached (0)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass
class Credentials:
    """Where the API server is and how to prove who we are to it."""

    server: str
    ssl_context: ssl.SSLContext | bool
    token: str | None = None
    token_file: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)
    _read_at: float = 0.0

    def authorization(self) -> str | None:
        if self.token_file is not None and time.monotonic() - self._read_at > TOKEN_REREAD:
            self.token = self.token_file.read_text().strip()
            self._read_at = time.monotonic()
        return f"Bearer {self.token}" if self.token else None


class KubeApi:
    """JSON over HTTPS to one API server. Use as ``async with KubeApi(credentials) as api``."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    async def __aenter__(self) -> "KubeApi":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to release: every call has its own connection."""

    def with_headers(self, headers: Mapping[str, str]) -> "KubeApi":
        """The same server and credentials with extra headers (e.g. ``Impersonate-User``)."""
        c = self.credentials
        return KubeApi(Credentials(c.server, c.ssl_context, c.token, c.token_file, {**c.headers, **headers}))

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Obj:
        return await self._call("GET", path, params=params)

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        return await self._call("PATCH", path, body=body, content_type="application/merge-patch+json")

    async def create(self, path: str, body: Obj) -> Obj:
        return await self._call("POST", path, body=body)

    async def watch(self, path: str, params: Mapping[str, str]) -> AsyncIterator[Obj]:
        """The events of a watch (``{"type", "object"}``) until the server ends it."""
        try:
            async with self._request("GET", path, params={**params, "watch": "true"}) as reply:
                await _raise_for(reply, "GET", path)
                async for line in reply.lines():
                    if line.strip():
                        event: Obj = json.loads(line)
                        yield event
        except (HttpClientError, ValueError) as exc:
            raise _unreachable("GET", path, exc) from exc

    async def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Obj | None = None, **kw: str
    ) -> Obj:
        try:
            async with self._request(method, path, params=params, body=body, **kw) as reply:
                await _raise_for(reply, method, path)
                answer: Obj = json.loads(await reply.read())
                return answer
        except (HttpClientError, ValueError) as exc:
            raise _unreachable(method, path, exc) from exc

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Obj | None = None,
        content_type: str = "application/json",
    ) -> AbstractAsyncContextManager[Reply]:
        headers = {"Accept": "application/json", **self.credentials.headers}
        if (authorization := self.credentials.authorization()) is not None:
            headers["Authorization"] = authorization
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        url = self.credentials.server + path
        return request(method, url, params=params, body=data, headers=headers, verify=self.credentials.ssl_context)


def _unreachable(method: str, path: str, exc: BaseException) -> KubeApiError:
    return KubeApiError(0, "unreachable", f"{method} {path}: no answer from the API server ({exc!r})")


async def _raise_for(reply: Reply, method: str, path: str) -> None:
    if reply.status < 400:
        return
    try:
        message = json.loads(await reply.read()).get("message", "")
    except (ValueError, AttributeError, HttpClientError):
        message = ""
    raise KubeApiError(reply.status, reply.reason, f"{method} {path}: {reply.status} {message}")


def in_cluster(directory: Path = SERVICE_ACCOUNT) -> Credentials:
    """The pod's ServiceAccount and the API server the kubelet named in the environment."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("not in a pod: KUBERNETES_SERVICE_HOST is not set (give GOQ_KUBECONFIG)")
    if ":" in host:
        host = f"[{host}]"
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    return Credentials(f"https://{host}:{port}", context, token_file=directory / "token")


def from_kubeconfig(path: Path) -> Credentials:
    """The current context of a kubeconfig: server, CA, and a token or a client certificate."""
    import yaml  # only here: a sidecar in a pod never reads a kubeconfig

    try:
        config = yaml.safe_load(path.read_text())
        current = config["current-context"]
        context = _named(config, "contexts", current)["context"]
        cluster = _named(config, "clusters", context["cluster"])["cluster"]
        user = _named(config, "users", context["user"])["user"] if context.get("user") else {}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read kubeconfig {path}: {exc!r}") from exc
    base = path.parent
    if cluster.get("insecure-skip-tls-verify"):
        context_ssl: ssl.SSLContext | bool = False
    else:
        cafile, cadata = _ca(cluster, base)
        context_ssl = ssl.create_default_context(cafile=cafile, cadata=cadata)
    if isinstance(context_ssl, ssl.SSLContext) and ("client-certificate" in user or "client-certificate-data" in user):
        _load_client_certificate(context_ssl, user, base)
    token_file = Path(base, user["tokenFile"]) if user.get("tokenFile") else None
    return Credentials(cluster["server"].rstrip("/"), context_ssl, token=user.get("token"), token_file=token_file)


def _named(config: Obj, kind: str, name: str) -> Obj:
    for entry in config.get(kind) or []:
        if entry.get("name") == name:
            found: Obj = entry
            return found
    raise KeyError(f"{kind} has no entry named {name!r}")


def _ca(cluster: Obj, base: Path) -> tuple[str | None, str | None]:
    """The CA to trust: a file, or inline data (PEM); neither means the system's."""
    if data := cluster.get("certificate-authority-data"):
        return None, base64.b64decode(data).decode()
    if file := cluster.get("certificate-authority"):
        return str(base / file), None
    return None, None


def _load_client_certificate(context: ssl.SSLContext, user: Obj, base: Path) -> None:
    if "client-certificate" in user:
        context.load_cert_chain(str(base / user["client-certificate"]), str(base / user["client-key"]))
        return
    # ``ssl`` loads certificates from files only: write the inline ones to a private, short-lived folder.
    with tempfile.TemporaryDirectory(prefix="goq-kube-") as folder:
        cert, key = Path(folder, "client.crt"), Path(folder, "client.key")
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.touch(mode=0o600)
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        context.load_cert_chain(str(cert), str(key))
