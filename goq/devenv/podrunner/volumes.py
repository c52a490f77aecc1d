"""A pod's volumes as folders in its own directory, kept in sync as a kubelet keeps them; where mounts landed.

Secret and ConfigMap volumes (and ``projected`` ones made of them) are laid out by the kubelet's atomic
writer (``atomic``: ``..data`` -> a timestamped directory, each key a symlink through it), and
``refresh`` re-reads them and swaps a volume whose content changed, so that a process following
``..data`` (the sidecar's key ring) sees a Secret's update as in a cluster. ``emptyDir`` is an empty
folder. A mount path inside the container becomes that folder, and environment values naming a mount
path are rewritten to it (``GOQ_KEYS_DIR`` is one).
"""

import base64
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from goq.devenv.errors import DevEnvError
from goq.devenv.podrunner import atomic

log = logging.getLogger("goq.devenv.podrunner")

SYNC_INTERVAL: Final = 10.0
"""Seconds between two refreshes of a pod's Secret and ConfigMap volumes (``--volume-sync``). A kubelet
resyncs a pod every ``--sync-frequency`` (1 min, with up to 50 % jitter) and reads the objects through
its cache (a watch, or a TTL of up to 1 min), so in a cluster an update reaches a volume 1 to 2.5 min
after it was written; here it is shorter so that local changes and tests move."""


class MissingObjectError(DevEnvError):
    """A Secret or ConfigMap a pod needs does not exist (yet): the container waits, as with a kubelet."""


class ObjectReader(Protocol):
    """Reads what pods refer to; raises MissingObjectError for an object that does not exist."""

    async def secret(self, namespace: str, name: str) -> dict[str, bytes]: ...

    async def config_map(self, namespace: str, name: str) -> dict[str, str]: ...


def _chosen(files: Mapping[str, bytes], items: list[dict[str, Any]] | None) -> dict[str, bytes]:
    """The files a source puts into the volume: every key, or only ``items`` under their ``path``."""
    if not items:
        return dict(files)
    result = {}
    for item in items:
        if item["key"] not in files:
            raise MissingObjectError(f"key {item['key']!r} is missing")
        result[item.get("path", item["key"])] = files[item["key"]]
    return result


async def _source(reader: ObjectReader, namespace: str, volume: Mapping[str, Any]) -> dict[str, bytes] | None:
    """A volume's (or a projected source's) Secret or ConfigMap; ``None`` if it names neither."""
    kind = volume.get("secret") or volume.get("configMap")
    if not kind:
        return None
    try:
        if "secret" in volume:  # a volume names it ``secretName``, a projected source ``name``
            files = await reader.secret(namespace, kind.get("secretName") or kind["name"])
        else:
            files = {k: v.encode() for k, v in (await reader.config_map(namespace, kind["name"])).items()}
    except MissingObjectError:
        if kind.get("optional"):
            return {}
        raise
    return _chosen(files, kind.get("items"))


async def content(reader: ObjectReader, namespace: str, volume: Mapping[str, Any]) -> dict[str, bytes] | None:
    """What a Secret, ConfigMap or projected volume holds (path -> bytes); ``None`` for other kinds."""
    sources = [volume, *((volume.get("projected") or {}).get("sources") or [])]
    found = [files for source in sources if (files := await _source(reader, namespace, source)) is not None]
    return {path: data for files in found for path, data in files.items()} if found else None


async def materialize(reader: ObjectReader, pod: Mapping[str, Any], root: Path) -> dict[str, Path]:
    """Write the pod's volumes under ``root``; return volume name -> folder. Unknown kinds are empty folders."""
    namespace = pod["metadata"]["namespace"]
    folders: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        folder = root / volume["name"]
        folder.mkdir(parents=True, exist_ok=True)
        if (files := await content(reader, namespace, volume)) is not None:
            atomic.write(folder, files)
        folders[volume["name"]] = folder
    return folders


async def refresh(reader: ObjectReader, pod: Mapping[str, Any], root: Path) -> list[str]:
    """Re-read the pod's Secret and ConfigMap volumes and swap each that changed; the names of those swapped.

    A volume whose object is gone keeps its last content, as with a kubelet."""
    namespace = pod["metadata"]["namespace"]
    swapped = []
    for volume in pod["spec"].get("volumes") or []:
        try:
            files = await content(reader, namespace, volume)
        except MissingObjectError as exc:
            log.warning("%s/%s: volume %s kept as it is: %s", namespace, pod["metadata"]["name"], volume["name"], exc)
            continue
        if files is not None and atomic.write(root / volume["name"], files):
            swapped.append(volume["name"])
    return swapped


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
