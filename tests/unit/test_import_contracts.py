"""The import contracts (``[tool.importlinter]`` in pyproject.toml, a gate of ``make test``) catch what they are
for: checked here on a copy of the sidecar's source, once as it is and once with a forbidden import planted."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("client", "sidecar", "operator", "webhook", "devenv")
"""The distributions' folders: each holds its part of the namespace package goq."""
MONGODB_CONTRACTS = ("mongodb-adapters", "engine-port")
LAYER_CONTRACTS = ("sidecar-layers", "core-layers")


def staged(tmp_path: Path, plant: tuple[str, str] | None = None) -> Path:
    """The distributions' folders, with the sidecar's goq/ copied so that ``plant`` (a module's path in
    sidecar/goq/sidecar/, and a line) can be added to it."""
    stage = tmp_path / "stage"
    for folder in FOLDERS:
        (stage / folder).mkdir(parents=True)
        if folder != "sidecar":
            (stage / folder / "goq").symlink_to(ROOT / folder / "goq")
    shutil.copytree(ROOT / "sidecar" / "goq", stage / "sidecar" / "goq", ignore=shutil.ignore_patterns("__pycache__"))
    if plant is not None:
        module, line = plant
        path = stage / "sidecar" / "goq" / "sidecar" / module
        path.write_text(f"{line}\n{path.read_text() if path.exists() else ''}")
    return stage


def lint(stage: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """import-linter on the stage's folders in place of the repository's, which the editable installs put on
    ``sys.path`` (goq, a namespace package, would otherwise be read from both)."""
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    ours = [str(stage / folder) for folder in FOLDERS]
    theirs = [str(ROOT / folder) for folder in FOLDERS]
    runner = (
        f"import sys; sys.path[:] = [*{ours!r}, *(p for p in sys.path if p not in {theirs!r})]; "
        "from importlinter.cli import lint_imports_command; lint_imports_command()"
    )
    command = [sys.executable, "-c", runner, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml"), *selected]
    return subprocess.run(command, cwd=stage, capture_output=True, text=True, check=False, timeout=120)


def test_the_sidecar_as_it_is_keeps_the_mongodb_contracts(tmp_path: Path) -> None:
    result = lint(staged(tmp_path), *MONGODB_CONTRACTS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "reported"),
    [
        (
            "core/engine.py",
            "from goq.sidecar.adapters.stores.mongo import MongoStore",
            "goq.sidecar.core.engine -> goq.sidecar.adapters.stores.mongo",
        ),
        ("core/engine.py", "import pymongo", "goq.sidecar.core.engine -> pymongo"),
        ("core/backlog.py", "from pymongo.errors import PyMongoError", "goq.sidecar.core.backlog -> pymongo"),
        ("ports/stores.py", "import pymongo", "goq.sidecar.ports.stores -> pymongo"),
        (
            "apis/health.py",
            "from goq.sidecar.adapters.stores.mongo.outbox import MongoOutbox",
            "goq.sidecar.apis.health -> goq.sidecar.adapters.stores.mongo.outbox",
        ),
        ("new_module.py", "import bson", "goq.sidecar.new_module -> bson"),
    ],
    ids=[
        "engine-imports-the-store",
        "engine-imports-the-driver",
        "delivery-imports-the-driver",
        "port-imports-the-driver",
        "api-imports-a-module-of-the-store",
        "new-module",
    ],
)
def test_a_sidecar_module_outside_the_adapters_importing_mongodb_breaks_a_contract(
    tmp_path: Path, module: str, line: str, reported: str
) -> None:
    result = lint(staged(tmp_path, (module, line)), *MONGODB_CONTRACTS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert reported in result.stdout


def test_the_sidecar_as_it_is_keeps_its_layers(tmp_path: Path) -> None:
    result = lint(staged(tmp_path), *LAYER_CONTRACTS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "reported"),
    [
        ("core/engine.py", "import goq.sidecar.apis.rest_api", "goq.sidecar.core.engine -> goq.sidecar.apis.rest_api"),
        ("core/outbound.py", "import goq.sidecar.core.engine", "goq.sidecar.core.outbound -> goq.sidecar.core.engine"),
        (
            "domain/records.py",
            "import goq.sidecar.adapters.stores.memory",
            "goq.sidecar.domain.records -> goq.sidecar.adapters.stores.memory",
        ),
    ],
    ids=["engine-imports-an-api", "delivery-imports-the-engine", "domain-imports-an-adapter"],
)
def test_a_sidecar_module_importing_a_layer_above_it_breaks_the_layers(
    tmp_path: Path, module: str, line: str, reported: str
) -> None:
    result = lint(staged(tmp_path, (module, line)), *LAYER_CONTRACTS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert reported in result.stdout


def test_a_new_module_at_the_top_of_the_sidecar_must_be_placed_in_a_layer(tmp_path: Path) -> None:
    result = lint(staged(tmp_path, ("new_module.py", "import goq.sidecar.domain.records")), "sidecar-layers")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not listed as layers:\n\n- goq.sidecar.new_module" in result.stdout
