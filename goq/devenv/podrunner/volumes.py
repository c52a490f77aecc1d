"""A pod's volumes as folders in its own directory, and where each container's mounts landed.

Secret and ConfigMap volumes (and ``projected`` ones made of them) are written as one file per key,
as the kubelet does; ``emptyDir`` is an empty folder. A mount path inside the container becomes that
folder, and environment values naming a mount path are rewritten to it (``GOQ_KEYS_DIR`` is one).
"""

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from goq.devenv.errors import DevEnvError


class MissingObjectError(DevEnvError):
    """A Secret or ConfigMap a pod needs does not exist (yet): the container waits, as with a kubelet."""


class ObjectReader(Protocol):
    """Reads what pods refer to; raises MissingObjectError for an object that does not exist."""

    async def secret(self, namespace: str, name: str) -> dict[str, bytes]: ...

    async def config_map(self, namespace: str, name: str) -> dict[str, str]: ...


def _write(folder: Path, files: Mapping[str, bytes], items: list[dict[str, Any]] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    chosen = {i["key"]: i.get("path", i["key"]) for i in items} if items else {k: k for k in files}
    for key, path in chosen.items():
        if key not in files:
            raise MissingObjectError(f"key {key!r} is missing")
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[key])
        target.chmod(0o600)


async def _source(reader: ObjectReader, namespace: str, volume: Mapping[str, Any]) -> dict[str, bytes] | None:
    if secret := volume.get("secret"):
        return await reader.secret(namespace, secret["secretName"])
    if config_map := volume.get("configMap"):
        return {k: v.encode() for k, v in (await reader.config_map(namespace, config_map["name"])).items()}
    return None


async def materialize(reader: ObjectReader, pod: Mapping[str, Any], root: Path) -> dict[str, Path]:
    """Write the pod's volumes under ``root``; return volume name -> folder. Unknown kinds are empty folders."""
    namespace = pod["metadata"]["namespace"]
    folders: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        folder = root / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        if (files := await _source(reader, namespace, volume)) is not None:
            kind = volume.get("secret") or volume.get("configMap") or {}
            _write(folder, files, kind.get("items"))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if (files := await _source(reader, namespace, source)) is not None:
                kind = source.get("secret") or source.get("configMap") or {}
                _write(folder, files, kind.get("items"))
        folders[volume["name"]] = folder
    return folders


def mounts(container: Mapping[str, Any], folders: Mapping[str, Path]) -> dict[str, Path]:
    """The container's mount paths -> the local folders behind them (``subPath`` honoured)."""
    result: dict[str, Path] = {}
    for mount in container.get("volumeMounts") or []:
        folder = folders.get(mount["name"])
        if folder is not None:
            result[mount["mountPath"].rstrip("/")] = folder / mount.get("subPath", "")
    return result


def rewrite(value: str, mounted: Mapping[str, Path]) -> str:
    """``value`` with a leading mount path replaced by its local folder (longest match first)."""
    for path in sorted(mounted, key=len, reverse=True):
        if value == path or value.startswith(path + "/"):
            return str(mounted[path]) + value[len(path) :]
    return value


def decode_secret(data: Mapping[str, str] | None) -> dict[str, bytes]:
    """A Secret's ``data`` (base64 values) as bytes."""
    return {k: base64.b64decode(v) for k, v in (data or {}).items()}
