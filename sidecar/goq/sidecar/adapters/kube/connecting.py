"""The sidecar's API client: the pod's ServiceAccount in a cluster, a kubeconfig elsewhere."""

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from goq import names
from goq.sidecar.adapters.kube.api import KubeApi, from_kubeconfig, in_cluster


@contextlib.asynccontextmanager
async def connect(kubeconfig: str | None = None) -> AsyncIterator[KubeApi]:
    """An API client: ``kubeconfig`` if given, in-cluster when running in a pod, else ``$KUBECONFIG``."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        credentials = in_cluster()
    else:
        path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        credentials = from_kubeconfig(Path(path))
    async with KubeApi(credentials) as api:
        yield api


def custom_objects(namespace: str, plural: str, name: str | None = None) -> str:
    """The API path of GoQ's custom objects of ``plural`` in ``namespace`` (one of them with ``name``)."""
    path = f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path
