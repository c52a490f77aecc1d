"""The leader election settings: defaults, parsing, and the order a safe handover needs."""

import pytest

from goq.errors import ConfigError
from goq.operator.settings import OperatorSettings


def test_the_defaults_renew_every_two_seconds_and_hand_over_after_fifteen() -> None:
    leader = OperatorSettings.from_env({}).leader
    assert (leader.lease, leader.duration, leader.renew_deadline, leader.retry_period) == (
        "goq-operator-leader",
        15.0,
        10.0,
        2.0,
    )


def test_durations_are_read_from_the_environment() -> None:
    leader = OperatorSettings.from_env(
        {
            "GOQ_LEADER_LEASE": "other",
            "GOQ_LEADER_LEASE_DURATION": "30s",
            "GOQ_LEADER_RENEW_DEADLINE": "20s",
            "GOQ_LEADER_RETRY_PERIOD": "500ms",
        }
    ).leader
    assert (leader.lease, leader.duration, leader.renew_deadline, leader.retry_period) == ("other", 30.0, 20.0, 0.5)


@pytest.mark.parametrize(
    "env",
    [
        {"GOQ_LEADER_RENEW_DEADLINE": "15s"},  # must stop before another may take over
        {"GOQ_LEADER_RETRY_PERIOD": "10s"},  # must renew more than once before giving up
        {
            "GOQ_LEADER_LEASE_DURATION": "900ms",
            "GOQ_LEADER_RENEW_DEADLINE": "500ms",
            "GOQ_LEADER_RETRY_PERIOD": "100ms",
        },
    ],
)
def test_an_order_that_could_let_two_leaders_run_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="GOQ_LEADER_"):
        OperatorSettings.from_env(env)
