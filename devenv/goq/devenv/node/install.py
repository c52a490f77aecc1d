"""GoQ installed on the real node as users install it: ``kubectl apply -k`` of ``manifests/``, through an overlay.

The overlay changes only what this machine needs, the way a user's own overlay would (docs/deploy.md):

- the images: ``goq.local/...:local``, built from the Dockerfiles and imported into containerd
  (``dockerfiles``); no registry is reachable, and ``imagePullPolicy: IfNotPresent`` finds them there;
- the PodDisruptionBudget's API version: the node is Kubernetes 1.20, which has only ``policy/v1beta1``;
- no MongoDB: Debian ships no mongod image, so the sidecars run transient-only (``GOQ_MONGODB_SECRET``
  and ``GOQ_MONGODB_SOURCE_SECRET`` empty) unless ``mongodb_secret`` names a source Secret;
- the operator's settings given in ``operator_env`` (a development cluster's shorter intervals).

kustomize takes a base only by a relative path, so the overlay names ``manifests/`` relative to itself.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from goq.devenv.node import dockerfiles

MANIFESTS: Final = dockerfiles.context_dir() / "manifests"
PDB_V1BETA1: Final = '[{"op": "replace", "path": "/apiVersion", "value": "policy/v1beta1"}]'


def _image(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":")
    return name, tag


def write_overlay(
    directory: Path,
    *,
    mongodb_secret: str = "",
    kube_1_20: bool = True,
    operator_env: Mapping[str, str] | None = None,
) -> Path:
    """Write the overlay's ``kustomization.yaml`` into ``directory``; return the directory (for ``apply -k``)."""
    directory.mkdir(parents=True, exist_ok=True)
    operator_name, operator_tag = _image(dockerfiles.OPERATOR_IMAGE)
    env = [
        {"name": "GOQ_SIDECAR_IMAGE", "value": dockerfiles.SIDECAR_IMAGE},
        {"name": "GOQ_MONGODB_SECRET", "value": mongodb_secret},
        {"name": "GOQ_MONGODB_SOURCE_SECRET", "value": mongodb_secret},
        *({"name": name, "value": value} for name, value in (operator_env or {}).items()),
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "goq-operator", "namespace": "goq-system"},
        "spec": {"template": {"spec": {"containers": [{"name": "operator", "env": env}]}}},
    }
    patches: list[dict[str, Any]] = [{"patch": yaml.safe_dump(deployment, sort_keys=False)}]
    if kube_1_20:
        target = {"group": "policy", "version": "v1", "kind": "PodDisruptionBudget", "name": "goq-operator"}
        patches.append({"target": target, "patch": PDB_V1BETA1})
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(MANIFESTS, directory.resolve())],
        "images": [{"name": "goq/goq-operator", "newName": operator_name, "newTag": operator_tag}],
        "patches": patches,
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return directory
