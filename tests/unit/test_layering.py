"""Components never import each other, shared code never imports components, and product code never
imports the development servers. Checked on the source, so that a violation fails before it ships."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Source folder -> the package name it installs as (see setup.py).
PACKAGES = {"goq": "goq", "operator": "goq.operator", "sidecar": "goq.sidecar", "webhook": "goq.webhook"}
COMPONENTS = ("goq.operator", "goq.sidecar", "goq.webhook")
COMPOSITION_ROOT = "goq.cli"  # may import every component: it wires them into processes
DEVENV = "goq.devenv"


def module_name(path: Path) -> str:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    parts = [PACKAGES[folder], *rest]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def owner(module: str) -> str:
    for package in (*COMPONENTS, COMPOSITION_ROOT, DEVENV):
        if within(module, package):
            return package
    return "goq"  # the shared package


def forbidden_for(module: str) -> tuple[str, ...]:
    match owner(module):
        case "goq.cli":
            return (DEVENV,)
        case "goq.devenv":
            return COMPONENTS
        case "goq":
            return (*COMPONENTS, COMPOSITION_ROOT, DEVENV)
        case component:
            return (*(c for c in COMPONENTS if c != component), COMPOSITION_ROOT, DEVENV)


def source_files() -> list[Path]:
    return sorted(p for folder in PACKAGES for p in (ROOT / folder).rglob("*.py"))


def violations(path: Path) -> list[str]:
    module = module_name(path)
    bad = forbidden_for(module)
    return sorted(f"{module} imports {name}" for name in imported_modules(path) if any(within(name, b) for b in bad))


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_respects_the_layers(path: Path) -> None:
    assert violations(path) == []


def test_the_check_sees_every_component() -> None:
    owners = {owner(module_name(p)) for p in source_files()}
    assert {*COMPONENTS, COMPOSITION_ROOT, DEVENV, "goq"} <= owners


def test_a_component_importing_another_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_root = tmp_path
    (fake_root / "sidecar").mkdir()
    offender = fake_root / "sidecar" / "delivery.py"
    offender.write_text("from goq.operator import reconcile\nfrom ..webhook import patch\nimport goq.errors\n")
    monkeypatch.setitem(globals(), "ROOT", fake_root)
    assert violations(offender) == [
        "goq.sidecar.delivery imports goq.operator",
        "goq.sidecar.delivery imports goq.operator.reconcile",
        "goq.sidecar.delivery imports goq.webhook",
        "goq.sidecar.delivery imports goq.webhook.patch",
    ]
