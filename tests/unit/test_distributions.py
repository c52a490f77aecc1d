"""Each distribution declares what its modules import, so that an image installing only its component runs.

goq is one namespace package over five distributions, one per folder (client/ is ``goq``; sidecar/, operator/,
webhook/, devenv/ are ``goq-<folder>``). Read from the import graph (grimp, as import-linter reads it): every
package a module imports, even inside a function, must come with the distribution that holds the module, or with
one it depends on; every goq module it imports must be in one of those distributions too.
"""

import functools
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("client", "sidecar", "operator", "webhook", "devenv")
TOOLING_EXTRAS = ("dev", "bench")
"""goq-devenv's extras for developers' tools, not for what its modules import."""


def _name(requirement: str) -> tuple[str, set[str]]:
    """A requirement's normalized distribution name and its extras: ``goq[kube]==0.1.0`` -> ``goq``, {kube}."""
    found = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", requirement)
    assert found, requirement
    extras = {e.strip() for e in (found.group(2) or "").split(",") if e.strip()}
    return re.sub(r"[-_.]+", "-", found.group(1)).lower(), extras


@functools.cache
def _projects() -> dict[str, tuple[str, dict[str, list[str]]]]:
    """Folder -> (distribution name, {"": dependencies, extra: its dependencies})."""
    found = {}
    for folder in FOLDERS:
        project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
        requirements = {"": project.get("dependencies", []), **project.get("optional-dependencies", {})}
        found[folder] = (_name(project["name"])[0], requirements)
    return found


def _installed_with(folder: str) -> tuple[set[str], set[str]]:
    """The distributions installed with ``folder``'s (its extras too, but not the tooling ones), and the goq
    folders among them (itself included), following goq's own dependencies."""
    by_name = {name: f for f, (name, _) in _projects().items()}
    distributions: set[str] = set()
    folders: set[str] = set()
    todo = [(folder, {extra for extra in _projects()[folder][1] if extra and extra not in TOOLING_EXTRAS})]
    while todo:
        current, extras = todo.pop()
        folders.add(current)
        requirements = _projects()[current][1]
        for group in ("", *extras):
            for requirement in requirements.get(group, []):
                name, wanted = _name(requirement)
                distributions.add(name)
                if name in by_name:
                    todo.append((by_name[name], wanted))
    return distributions, folders


def _folder_of(module: str) -> str | None:
    """The folder whose goq/ holds ``module`` (None for the namespaces, which every folder shares)."""
    parts = module.split(".")
    for folder in FOLDERS:
        base = ROOT / folder / Path(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return folder
    return None


@functools.cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("goq", include_external_packages=True, cache_dir=None)


def _providers() -> dict[str, set[str]]:
    """A top-level import name -> the normalized names of the installed distributions that provide it."""
    return {top: {_name(d)[0] for d in dists} for top, dists in packages_distributions().items()}


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_distribution_brings_every_package_its_modules_import(folder: str) -> None:
    graph = _graph()
    distributions, folders = _installed_with(folder)
    providers = _providers()
    missing = []
    for module in sorted(m for m in graph.modules if m.startswith("goq.") and _folder_of(m) == folder):
        for imported in graph.find_modules_directly_imported_by(module):
            top = imported.split(".")[0]
            if top == "goq":
                owner = _folder_of(imported)
                if owner is not None and owner not in folders:
                    missing.append(f"{module} -> {imported} (in {owner}/)")
            elif top not in sys.stdlib_module_names and not providers.get(top, set()) & distributions:
                missing.append(f"{module} -> {top} (from {sorted(providers.get(top, {'?'}))})")
    assert missing == [], f"{folder}/pyproject.toml does not bring what these import: {missing}"


def test_the_check_finds_a_package_a_distribution_does_not_declare() -> None:
    distributions, folders = _installed_with("client")
    assert "kubernetes-asyncio" in distributions  # the kube extra counts for goqctl's cluster commands
    assert not {"kopf", "pymongo", "cryptography"} & distributions
    assert folders == {"client"}
    operator_distributions, operator_folders = _installed_with("operator")
    assert operator_folders == {"operator", "webhook", "client"}
    assert {"kopf", "grpcio"} <= operator_distributions
    assert not _providers()["pymongo"] & _installed_with("webhook")[0]


def test_goqctl_without_the_kube_extra_names_it_for_the_cluster_commands() -> None:
    """``pip install goq`` brings no Kubernetes client: hidden here as if it were not installed."""
    code = (
        "import sys; sys.modules['kubernetes_asyncio'] = sys.modules['aiohttp'] = None; "
        "from goq.cli.goqctl import main; sys.exit(main(sys.argv[1:]))"
    )
    listed = subprocess.run(
        [sys.executable, "-c", code, "list"], capture_output=True, text=True, timeout=60, check=False
    )
    assert listed.returncode == 3, listed.stderr
    assert "pip install 'goq[kube]'" in listed.stderr

    direct = subprocess.run(
        [sys.executable, "-c", code, "--sidecar", "127.0.0.1:9", "stats"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert direct.returncode == 3, direct.stderr
    assert "sidecar at 127.0.0.1:9" in direct.stderr  # reached for, without the cluster's client
    assert "goq[kube]" not in direct.stderr
