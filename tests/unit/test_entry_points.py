"""The console scripts say what they are and, until their component exists, say so plainly."""

import pytest

from goq import __version__
from goq.cli import goqctl, operator, sidecar


@pytest.mark.parametrize(
    ("main", "prog"),
    [(sidecar.main, "goq-sidecar"), (operator.main, "goq-operator"), (goqctl.main, "goqctl")],
)
def test_version_flag_prints_the_installed_version(main, prog, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {__version__}"


@pytest.mark.parametrize("main", [operator.main])
def test_running_an_unbuilt_component_fails_and_says_so(main, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main([]) == 2
    assert "not built yet" in capsys.readouterr().err


def test_version_is_known() -> None:
    assert __version__ != "0.0.0+unknown"


def test_sidecar_without_settings_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GOQ_IDENTITY", raising=False)
    assert sidecar.main([]) == 2
    assert capsys.readouterr().err.strip() == "goq-sidecar: GOQ_IDENTITY is required"
