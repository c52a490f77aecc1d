"""The sidecar's API client: the pod's ServiceAccount in a cluster, a kubeconfig elsewhere."""

import contextlib
import os
from collections.abc import AsyncIterator

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config


@contextlib.asynccontextmanager
async def connect(kubeconfig: str | None = None) -> AsyncIterator[k8s.ApiClient]:
    """An API client: ``kubeconfig`` if given, in-cluster when running in a pod, else ``$KUBECONFIG``."""
    configuration = k8s.Configuration()
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await k8s_config.load_kube_config(
            config_file=kubeconfig or os.environ.get("KUBECONFIG") or None, client_configuration=configuration
        )
    async with k8s.ApiClient(configuration) as api:
        yield api
