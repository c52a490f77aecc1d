"""What GoQ's image builds depend on: the files a Dockerfile copies, and the machine's pip configuration."""

import concurrent.futures
import os
import time
from pathlib import Path

import pytest

from goq.devenv.node import dockerfiles
from goq.devenv.node.dockerfiles import Build

DOCKERFILE = """\
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS build
# COPY commented out is not an input
COPY pyproject.toml \\
     README.md ./
COPY pkg pkg
RUN echo build
FROM ${BASE}
COPY --from=build /opt/app /opt/app
"""


@pytest.fixture
def context(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "README.md").write_text("readme\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "tests.py").write_text("not copied\n")
    return tmp_path


def test_copied_sources_are_the_context_paths_of_copy_lines_not_other_stages(context: Path) -> None:
    assert dockerfiles.copied_sources(context / "Dockerfile") == ["pyproject.toml", "README.md", "pkg"]


def test_the_input_key_changes_with_copied_files_and_the_base_only(context: Path) -> None:
    build = Build("Dockerfile", "app")
    key = dockerfiles.input_key(build, "base1", context)

    (context / "tests.py").write_text("changed, but not in the image\n")
    (context / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\1")
    assert dockerfiles.input_key(build, "base1", context) == key

    assert dockerfiles.input_key(build, "base2", context) != key
    (context / "pkg" / "a.py").write_text("A = 2\n")
    assert dockerfiles.input_key(build, "base1", context) != key


def test_files_the_dockerignore_leaves_out_of_the_context_leave_the_input_key_alone(context: Path) -> None:
    (context / "pkg" / "devenv").mkdir()
    (context / "pkg" / "devenv" / "tool.py").write_text("T = 1\n")
    (context / "pkg" / "b.pyc").write_bytes(b"\0")
    build = Build("Dockerfile", "app")
    with_devenv = dockerfiles.input_key(build, "base1", context)
    (context / ".dockerignore").write_text("# comment\npkg/devenv\n**/*.pyc\n")
    key = dockerfiles.input_key(build, "base1", context)
    assert key != with_devenv  # the builder no longer sees pkg/devenv

    (context / "pkg" / "devenv" / "tool.py").write_text("T = 2\n")
    (context / "pkg" / "b.pyc").write_bytes(b"\1")
    assert dockerfiles.input_key(build, "base1", context) == key
    (context / "pkg" / "a.py").write_text("A = 2\n")
    assert dockerfiles.input_key(build, "base1", context) != key


def test_the_repository_dockerignore_leaves_out_the_dev_environment() -> None:
    root = dockerfiles.context_dir()
    patterns = dockerfiles.dockerignored(root)
    assert dockerfiles._ignored(Path("devenv/goq/devenv/node/dockerfiles.py"), patterns)
    assert not dockerfiles._ignored(Path("client/goq/devenv.py"), patterns)
    assert not dockerfiles._ignored(Path("sidecar/goq/sidecar/core/engine.py"), patterns)


def test_the_shipped_dockerfiles_take_the_base_as_a_build_argument_with_the_public_default() -> None:
    for build in dockerfiles.GOQ_BUILDS:
        text = (dockerfiles.context_dir() / build.dockerfile).read_text()
        assert "ARG BASE=python:3.11" in text
        assert all(
            line == "FROM ${BASE}" or line.startswith("FROM ${BASE} AS ")
            for line in text.splitlines()
            if line.startswith("FROM")
        )


def test_pip_configuration_is_merged_into_one_file_with_its_local_paths_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "99")
    mounts = dockerfiles.pip_config(tmp_path)

    conf = (tmp_path / "pip.conf").read_text()
    assert conf.startswith("[global]\n")
    assert f"find-links = {wheels}\n" in conf
    assert "default-timeout = 99\n" in conf
    assert mounts[:2] == ["-v", f"{tmp_path / 'pip.conf'}:/etc/pip.conf:ro"]
    assert f"{wheels}:{wheels}:ro" in mounts


def test_pruning_keeps_the_current_archive_and_the_two_used_last(tmp_path: Path) -> None:
    build = Build("Dockerfile", "goq-sidecar")
    archives = [tmp_path / f"goq-sidecar-{n}.tar" for n in "abcde"]
    for age, path in enumerate(archives):
        path.write_bytes(b"x")
        os.utime(path, (1_000_000 - age * 60, 1_000_000 - age * 60))  # a used last, e first
    other_image = tmp_path / "goq-operator-a.tar"
    other_image.write_bytes(b"x")
    dockerfiles._prune(build, archives[4])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "goq-operator-a.tar",
        "goq-sidecar-a.tar",
        "goq-sidecar-b.tar",
        "goq-sidecar-e.tar",
    ]


def test_callers_at_once_share_one_build_of_an_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sessions (or work trees) asking for the same image: one builds, the other waits and uses its archive;
    builds of one image name never overlap (they would overwrite each other's tag in buildah's storage)."""
    monkeypatch.setattr(dockerfiles.archive, "images_dir", lambda: tmp_path)
    monkeypatch.setattr(dockerfiles.base_image, "ensure", lambda: (tmp_path / "base.tar", "base-id"))
    monkeypatch.setattr(dockerfiles, "input_key", lambda build, base_id, context: "k1")
    monkeypatch.setattr(dockerfiles, "_prepare_builds", lambda base, work: [])
    running: list[str] = []
    overlaps: list[str] = []
    built: list[str] = []

    def build(build: Build, context: Path, mounts: list[str], out: Path) -> None:
        if running:
            overlaps.append(build.name)
        running.append(build.name)
        time.sleep(0.2)
        out.write_bytes(b"image")
        built.append(build.name)
        running.remove(build.name)

    monkeypatch.setattr(dockerfiles, "_build", build)
    sidecar = (Build("Dockerfile", "goq-sidecar"),)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: dockerfiles.ensure(sidecar, tmp_path), range(3)))
    assert built == ["goq-sidecar"]
    assert not overlaps
    assert all(r == {"goq.local/goq-sidecar:local": tmp_path / "goq-sidecar-k1.tar"} for r in results)
