"""The console scripts say what they are, and refuse bad settings by name before doing anything."""

import pytest

from goq.cli import goqctl, operator, sidecar
from goq.version import __version__


@pytest.mark.parametrize(
    ("main", "prog"),
    [(sidecar.main, "goq-sidecar"), (operator.main, "goq-operator"), (goqctl.main, "goqctl")],
)
def test_version_flag_prints_the_installed_version(main, prog, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    try:  # argparse exits; goqctl (click) returns its exit code
        code = main(["--version"])
    except SystemExit as exited:
        code = exited.code
    assert code == 0
    assert capsys.readouterr().out.strip() == f"{prog} {__version__}"


def test_version_is_known() -> None:
    assert __version__ != "0.0.0+unknown"


def test_sidecar_without_settings_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GOQ_IDENTITY", raising=False)
    assert sidecar.main([]) == 2
    assert capsys.readouterr().err.strip() == "goq-sidecar: GOQ_IDENTITY is required"


def test_the_operator_refuses_a_bad_setting_by_name_before_it_connects(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOQ_NATIVE_SIDECAR", "maybe")
    assert operator.main([]) == 1
    assert "goq-operator: GOQ_NATIVE_SIDECAR must be auto, true or false, got 'maybe'" in capsys.readouterr().err


def test_the_operator_picks_the_sidecar_kind_by_server_version() -> None:
    from goq.operator.settings import OperatorSettings

    settings = OperatorSettings()
    assert operator.injection_settings(settings, "1", "20").native_sidecar is False
    assert operator.injection_settings(settings, "1", "29").native_sidecar is True
    forced = OperatorSettings.from_env({"GOQ_NATIVE_SIDECAR": "false"})
    assert operator.injection_settings(forced, "1", "31").native_sidecar is False
