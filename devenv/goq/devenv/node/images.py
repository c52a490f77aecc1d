"""Container images without a registry: one-layer images written as ``docker save`` archives.

No registry is reachable, so the node's images are made here and imported into containerd: the pause
image (the sandbox's only process, built from the Kubernetes tree's ``pause.c``) and a small test image
whose one program is Debian's static busybox (``httpd``, ``sh``, ``cat``, ``echo``). Pods use them with
``imagePullPolicy: Never``.
"""

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PAUSE_IMAGE: Final = "goq.local/pause:3.4"
BUSYBOX_IMAGE: Final = "goq.local/busybox:1"
_BUSYBOX_APPLETS: Final = ("sh", "httpd", "cat", "echo", "ls", "rm", "sleep", "nc", "id", "hostname")


@dataclass(frozen=True)
class ImageSpec:
    """An image's name, its files (path in the image -> host file, or bytes) and its entrypoint."""

    name: str
    files: dict[str, Path | bytes]
    entrypoint: list[str]
    symlinks: dict[str, str] | None = None


def pause_image(bin_dir: Path) -> ImageSpec:
    """The sandbox image: ``/pause``, as upstream's."""
    return ImageSpec(PAUSE_IMAGE, {"pause": bin_dir / "pause"}, ["/pause"])


def busybox_image(runtime_dir: Path) -> ImageSpec:
    """A test image: static busybox with a few applets, and a page for ``httpd -h /www`` to serve."""
    busybox = next(p for p in (runtime_dir / "bin/busybox", runtime_dir / "usr/bin/busybox") if p.exists())
    return ImageSpec(
        BUSYBOX_IMAGE,
        {"bin/busybox": busybox, "www/index.html": b"goq node ok\n", "tmp/.keep": b""},
        ["/bin/sh"],
        symlinks={f"bin/{applet}": "busybox" for applet in _BUSYBOX_APPLETS},
    )


def _layer(spec: ImageSpec) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted({str(Path(p).parent) for p in [*spec.files, *(spec.symlinks or {})]} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        for path, source in sorted(spec.files.items()):
            data = source.read_bytes() if isinstance(source, Path) else source
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o755 if isinstance(source, Path) else 0o644
            tar.addfile(info, io.BytesIO(data))
        for path, target in sorted((spec.symlinks or {}).items()):
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


def write_archive(spec: ImageSpec, path: Path) -> Path:
    """Write ``spec`` as a ``docker save`` archive (what ``ctr image import`` reads) to ``path``."""
    layer = _layer(spec)
    diff_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": spec.entrypoint, "Env": ["PATH=/bin"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
            "history": [{"created_by": "goq.devenv.node.images"}],
        },
        sort_keys=True,
    ).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [spec.name], "Layers": [f"{diff_id}/layer.tar"]}])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode="w") as tar:
        for name, data in (
            (f"{diff_id}/layer.tar", layer),
            (f"{diff_id}/VERSION", b"1.0"),
            (config_name, config),
            ("manifest.json", manifest.encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
