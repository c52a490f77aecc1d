"""What GoQ's image builds depend on: the files a Dockerfile copies, and the machine's pip configuration."""

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
