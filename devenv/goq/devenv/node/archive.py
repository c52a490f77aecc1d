"""A root filesystem as a one-layer image in ``docker save`` format, and the cache such images live in.

``images.write_archive`` builds small images in memory; a Python base is some 180 MB, so here the layer
is written by ``tar`` to a file and streamed into the archive. Archives are named by a content key and
written under a temporary name first: a reader never sees half an image, and a key that exists is done.
"""

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Final

from goq.devenv import kube
from goq.devenv.errors import DevEnvError

_CHUNK: Final = 1 << 20


def images_dir() -> Path:
    """Where built image archives are kept between runs, beside the node's binaries."""
    return kube.cache_dir() / "images"


def file_digest(path: Path) -> str:
    """The sha256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def rootfs_archive(rootfs: Path, name: str, env: list[str], entrypoint: list[str], out: Path) -> str:
    """Write ``rootfs`` as image ``name`` to the ``docker save`` archive ``out``; return the image ID."""
    layer = out.with_name(out.name + ".layer")
    result = subprocess.run(
        ["tar", "-C", str(rootfs), "--numeric-owner", "--xattrs", "-cf", str(layer), "."],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise DevEnvError(f"packing {rootfs} as a layer failed: {result.stderr.strip()}")
    diff_id = file_digest(layer)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": env, "Cmd": entrypoint, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
            "history": [{"created_by": "goq.devenv.node.archive"}],
        },
        sort_keys=True,
    ).encode()
    image_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{image_id}.json", "RepoTags": [name], "Layers": [f"{diff_id}/layer.tar"]}])
    partial = out.with_name(out.name + ".partial")
    try:
        with tarfile.open(partial, mode="w") as tar:
            tar.add(layer, arcname=f"{diff_id}/layer.tar")
            for member, data in (
                (f"{diff_id}/VERSION", b"1.0"),
                (f"{image_id}.json", config),
                ("manifest.json", manifest.encode()),
            ):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        partial.rename(out)
    finally:
        layer.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    return image_id
