"""Sidecar settings come from the environment once, with errors that name the variable."""

import base64
import json
import re

import pytest

from goq.errors import ConfigError
from goq.identity import Address
from goq.queue_spec import Overflow
from goq.sidecar.adapters.resolving import DnsResolver, StaticResolver, UnresolvableError
from goq.sidecar.settings import SidecarSettings

KEY = base64.b64encode(b"k" * 32).decode()


def settings(**env: str) -> SidecarSettings:
    return SidecarSettings.from_env({"GOQ_IDENTITY": "orders", "GOQ_HMAC_KEYS": f"k1={KEY}", **env})


def test_defaults_follow_the_contract() -> None:
    s = settings()
    assert s.address == Address("orders", "default")
    assert (s.peer_listen, s.grpc_listen, s.health_listen) == ("0.0.0.0:7702", "127.0.0.1:7701", "0.0.0.0:7703")
    assert s.resolver == "dns"
    assert s.keyring is not None
    assert s.keyring.active == "k1"
    assert s.unknown == ()


def test_queue_spec_and_retry_policy_are_read_as_json() -> None:
    s = settings(
        GOQ_QUEUE_SPEC=json.dumps({"sendQueueLimit": 5, "overflow": "reject"}),
        GOQ_RETRY_POLICY=json.dumps({"maxAttempts": 3}),
    )
    assert (s.queue_spec.send_queue_limit, s.queue_spec.overflow) == (5, Overflow.REJECT)
    assert s.retry_policy.max_attempts == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GOQ_IDENTITY": ""}, "GOQ_IDENTITY is required"),
        ({"GOQ_IDENTITY": "Orders"}, "GOQ_IDENTITY 'Orders' must be lower case"),
        ({"GOQ_LEASE": "soon"}, "GOQ_LEASE 'soon' is not a duration"),
        ({"GOQ_MAX_DELIVERIES": "0"}, "GOQ_MAX_DELIVERIES must be an integer from 1 to 1000, got '0'"),
        ({"GOQ_RESOLVER": "mdns"}, "GOQ_RESOLVER must be one of dns, static, got 'mdns'"),
        ({"GOQ_RESOLVER": "static"}, "GOQ_RESOLVER=static needs GOQ_PEERS"),
        ({"GOQ_PEER_LISTEN": "7702"}, "GOQ_PEER_LISTEN must be <host>:<port>, got '7702'"),
        ({"GOQ_QUEUE_SPEC": "{oops"}, "GOQ_QUEUE_SPEC is not valid JSON"),
        ({"GOQ_QUEUE_SPEC": '{"overflow": "drop"}'}, "GOQ_QUEUE_SPEC.overflow must be one of poison, reject"),
        ({"GOQ_HMAC_KEYS": "k1=not-base64!"}, "GOQ_HMAC_KEYS entry 'k1' is not <id>=<base64 key>"),
        ({"GOQ_HMAC_KEYS": f"k1={base64.b64encode(b'short').decode()}"}, "has 5 bytes; at least 32 are required"),
        ({"GOQ_HEARTBEAT": "10s"}, "GOQ_ADOPT_AFTER must be more than twice GOQ_HEARTBEAT"),
    ],
)
def test_bad_settings_name_the_variable_and_what_it_accepts(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        settings(**env)


def test_unknown_goq_variables_are_reported_not_fatal() -> None:
    assert settings(GOQ_LEASSE="1s").unknown == ("GOQ_LEASSE",)


def test_static_peers_resolve_and_unknown_ones_say_so() -> None:
    resolver = StaticResolver.parse("billing=127.0.0.1:7712, shipping.logistics=10.1.2.3:7702", "shop")
    assert resolver.target(Address("billing", "shop")) == "127.0.0.1:7712"
    assert resolver.target(Address("shipping", "logistics")) == "10.1.2.3:7702"
    with pytest.raises(UnresolvableError, match=r"no peer address known for billing\.elsewhere"):
        resolver.target(Address("billing", "elsewhere"))
    with pytest.raises(ConfigError, match="peer 'billing' must be written"):
        StaticResolver.parse("billing", "shop")


def test_dns_resolution_names_the_identitys_headless_service() -> None:
    target = DnsResolver("cluster.local").target(Address("billing", "shop"))
    assert target == "dns:///goq-billing.shop.svc.cluster.local:7702"


def test_dns_resolution_asks_the_named_dns_server_when_one_is_set() -> None:
    settings = SidecarSettings.from_env({"GOQ_IDENTITY": "orders", "GOQ_DNS_SERVER": "127.0.0.1:5353"})
    target = DnsResolver(settings.cluster_domain, server=settings.dns_server).target(Address("billing", "shop"))
    assert target == "dns://127.0.0.1:5353/goq-billing.shop.svc.cluster.local:7702"
    with pytest.raises(ConfigError, match="GOQ_DNS_SERVER must be <host>:<port>"):
        SidecarSettings.from_env({"GOQ_IDENTITY": "orders", "GOQ_DNS_SERVER": "nameserver"})


def test_a_retry_policy_whose_max_age_exceeds_the_dedupe_window_is_refused_at_start() -> None:
    with pytest.raises(ConfigError) as refused:
        settings(GOQ_DEDUPE_WINDOW="30m", GOQ_RETRY_POLICY=json.dumps({"maxAge": "1h"}))
    assert str(refused.value) == (
        "GOQ_RETRY_POLICY maxAge (1h) exceeds the de-duplication window (30m, GOQ_DEDUPE_WINDOW): a message still "
        "retried after the window could be delivered twice; maxAge may be at most 30m (or lengthen the window)"
    )
    assert settings(GOQ_DEDUPE_WINDOW="1h", GOQ_RETRY_POLICY=json.dumps({"maxAge": "1h"})).retry_policy.max_age == 3600


def test_the_default_max_age_is_cut_to_a_shorter_dedupe_window() -> None:
    s = settings(GOQ_DEDUPE_WINDOW="3s", GOQ_RETRY_POLICY=json.dumps({"maxAttempts": 3}))
    assert (s.dedupe_window, s.retry_policy.max_age, s.retry_policy.max_attempts) == (3.0, 3.0, 3)
    assert settings().retry_policy.max_age == 3600.0
