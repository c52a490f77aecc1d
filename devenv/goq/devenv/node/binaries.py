"""The node's programs: kubelet, kube-proxy, pause and the container runtime, built once into the cache.

``build-kube.sh --node`` builds the Kubernetes binaries from the same Debian source tree as the control
plane and unpacks Debian 12's containerd, runc, CNI plugins and iptables (nft) beside them; nothing is
installed on the machine. This module finds them and wraps the tools that need private libraries.
"""

import os
import subprocess
from pathlib import Path
from typing import Final

from goq.devenv import kube
from goq.devenv.errors import DevEnvError

BINARIES: Final = ("kubelet", "kube-proxy", "kube-scheduler", "pause")
RUNTIME_TOOLS: Final = ("usr/bin/containerd", "usr/bin/containerd-shim-runc-v2", "usr/bin/ctr", "usr/sbin/runc")
# kube-proxy, the kubelet and the CNI portmap plugin call these by name; all run as xtables-nft-multi.
_XTABLES: Final = (
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
)


def runtime_dir() -> Path:
    """Where Debian's runtime packages are unpacked (``usr/bin/containerd`` ...)."""
    return kube.cache_dir() / f"kube-{kube.KUBE_VERSION}" / "runtime"


def missing() -> list[str]:
    """What the node lacks in the cache: binaries by name, and ``runtime`` for the unpacked packages."""
    bin_dir = kube.bin_dir()
    absent = [b for b in (*kube.BINARIES, *BINARIES) if not os.access(bin_dir / b, os.X_OK)]
    root = runtime_dir()
    if not (root / ".complete").is_file() or any(not os.access(root / t, os.X_OK) for t in RUNTIME_TOOLS):
        absent.append("runtime")
    return absent


def ensure(*, build: bool = True) -> Path:
    """Return the binaries' directory, building what is missing first (about 4 minutes, niced)."""
    absent = missing()
    if not absent:
        return kube.bin_dir()
    if not build or "GOQ_KUBE_BIN" in os.environ:
        raise DevEnvError(f"{', '.join(absent)} missing in {kube.bin_dir()}; run `goq-dev node build` first")
    script = Path(kube.__file__).with_name("build-kube.sh")
    env = {**os.environ, "GOQ_CACHE": str(kube.cache_dir())}
    # nice: the build takes both cores for minutes; whatever else runs on the machine keeps going.
    if subprocess.run(["nice", "-n", "19", "bash", str(script), "--node"], env=env, check=False).returncode:
        raise DevEnvError(f"building the node's binaries failed (see the output above of {script} --node)")
    if absent := missing():
        raise DevEnvError(f"the build finished but {', '.join(absent)} are still missing in {kube.bin_dir()}")
    return kube.bin_dir()


def tool_path(directory: Path) -> str:
    """Write wrappers for the runtime's tools into ``directory``; return a ``PATH`` for the node's daemons.

    iptables is Debian's nft build with libraries the machine may lack: each wrapper points the loader
    and xtables at the unpacked ones. containerd finds its shim, and the kubelet ``nsenter`` and ``mount``,
    on this ``PATH``.
    """
    root = runtime_dir()
    directory.mkdir(parents=True, exist_ok=True)
    libs = root / "usr/lib/x86_64-linux-gnu"
    for name in _XTABLES:
        wrapper = directory / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f'LD_LIBRARY_PATH="{libs}" XTABLES_LIBDIR="{libs}/xtables" '
            f'exec "{root}/usr/sbin/xtables-nft-multi" {name} "$@"\n'
        )
        wrapper.chmod(0o755)
    parts = [str(directory), str(root / "usr/bin"), str(root / "usr/sbin"), os.environ.get("PATH", "/usr/bin:/bin")]
    return ":".join(parts)
