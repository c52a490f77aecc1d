"""``GOQ_SIDECAR_ENV``: settings the operator gives every injected sidecar, checked before any pod sees them."""

import pytest

from goq.cli.operator import injection_settings
from goq.errors import ConfigError
from goq.operator.settings import OperatorSettings
from goq.webhook.container import sidecar_container
from goq.webhook.settings import INJECTED_ENV, InjectionSettings


def _env(settings: InjectionSettings) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in sidecar_container("orders", settings)["env"]}


def test_the_given_settings_reach_every_injected_sidecar() -> None:
    settings = OperatorSettings.from_env({"GOQ_SIDECAR_ENV": "GOQ_STATUS_INTERVAL=2s, GOQ_LOG_FORMAT=text"})
    env = _env(injection_settings(settings, "1", "20"))
    assert (env["GOQ_STATUS_INTERVAL"], env["GOQ_LOG_FORMAT"]) == ("2s", "text")
    assert env["GOQ_IDENTITY"] == "orders"


def test_by_default_the_sidecar_gets_only_what_the_injection_sets() -> None:
    assert set(_env(injection_settings(OperatorSettings.from_env({}), "1", "20"))) <= INJECTED_ENV


def test_every_setting_the_injection_sets_is_known_as_taken() -> None:
    """Else GOQ_SIDECAR_ENV could give a second, conflicting value of one of them."""
    settings = InjectionSettings(mongodb_secret="goq-mongodb", peer_tls=True)
    assert set(_env(settings)) <= INJECTED_ENV


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("GOQ_STATUS_INTERVAL", "must look like"),
        ("status=2s", "'status' is not a sidecar setting"),
        ("PATH=/tmp", "'PATH' is not a sidecar setting"),
    ],
)
def test_a_malformed_value_is_refused_naming_what_is_allowed(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        OperatorSettings.from_env({"GOQ_SIDECAR_ENV": value})


def test_a_setting_the_injection_owns_is_refused_when_the_webhook_is_set_up() -> None:
    settings = OperatorSettings.from_env({"GOQ_SIDECAR_ENV": "GOQ_IDENTITY=billing,GOQ_TLS_DIR=/tmp"})
    with pytest.raises(ConfigError, match="GOQ_IDENTITY, GOQ_TLS_DIR set by the injection itself"):
        injection_settings(settings, "1", "20")
