"""Which local program stands for a container image: the pod runner runs no images, only processes.

The GoQ sidecar image runs the installed ``goq-sidecar``; the example images run the example programs
shipped in ``examples/`` (``goq-example-orders`` runs ``examples/*/orders.py``); a ``python`` image
runs this Python. Docker's rules apply: the container's ``command`` replaces the image's entrypoint and
its ``args`` the default arguments; a ``python``/``python3`` at the start of a command is this Python.
"""

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goq.devenv.errors import DevEnvError

SIDECAR_IMAGE = "goq-sidecar"


def repository(image: str) -> str:
    """The last path part of an image name without tag or digest: ``goq/goq-sidecar:0.1.0`` -> ``goq-sidecar``."""
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[0]


def is_sidecar(container: Mapping[str, Any]) -> bool:
    """Whether the container runs GoQ's sidecar image (it gets its pod's network adapted)."""
    return repository(str(container.get("image", ""))) == SIDECAR_IMAGE


def default_examples_dir() -> Path:
    """``examples/`` of the checkout GoQ is installed from (editable install), or ``$GOQ_EXAMPLES_DIR``."""
    if named := os.environ.get("GOQ_EXAMPLES_DIR"):
        return Path(named)
    import goq

    return Path(goq.__file__).resolve().parents[1] / "examples"


def _console_script(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise DevEnvError(f"{name} is not installed (run `make setup`)")
    return found


@dataclass(frozen=True)
class Images:
    """The map from image repositories to local entrypoints."""

    examples: Path

    def entrypoint(self, image: str) -> list[str] | None:
        """The image's entrypoint and default arguments, or ``None`` for an image not known here."""
        name = repository(image)
        if name == SIDECAR_IMAGE:
            return [_console_script("goq-sidecar")]
        if name in ("python", "python3"):
            return [sys.executable]
        if name.startswith("goq-example-"):
            programs = sorted(self.examples.glob(f"*/{name.removeprefix('goq-example-')}.py"))
            return [sys.executable, str(programs[0])] if programs else None
        return None

    def argv(self, container: Mapping[str, Any]) -> list[str]:
        """The process to start for ``container``; a DevEnvError says why an image cannot run here."""
        image = str(container.get("image", ""))
        command: Sequence[str] = container.get("command") or []
        args: Sequence[str] = container.get("args") or []
        entry = self.entrypoint(image)
        if command:
            argv = [*command, *args]
            if argv[0] in ("python", "python3"):
                argv[0] = sys.executable
            elif entry is None and shutil.which(argv[0]) is None:
                raise DevEnvError(f"image {image!r} is not runnable here and {argv[0]!r} is not a local program")
            return argv
        if entry is None:
            raise DevEnvError(
                f"image {image!r} is not runnable here: the local pod runner knows goq-sidecar, "
                f"goq-example-<program> (examples/*/<program>.py) and python images"
            )
        return [*entry, *args]
