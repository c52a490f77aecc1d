"""goqctl's pure parts and its command line without a sidecar: help, completion, tables, filters, frames."""

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest

from goq.cli.goqctl import main
from goq.cli.goqctl.cluster import health, list_table, statuses
from goq.cli.goqctl.errors import TargetError, UsageError
from goq.cli.goqctl.forwarding import decode
from goq.cli.goqctl.humanize import age, ago, iso_time, size
from goq.cli.goqctl.output import Table, fields
from goq.cli.goqctl.poisons import PoisonFilter
from goq.cli.goqctl.targets import choose_pod, grpc_port
from goq.client import Poisoned

BIN = Path(sys.executable).parent
COMMANDS = [
    [],
    ["send"],
    ["receive"],
    ["ack"],
    ["nack"],
    ["stats"],
    ["poison"],
    ["poison", "list"],
    ["poison", "show"],
    ["poison", "redrive"],
    ["list"],
    ["status"],
    ["completion"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "goqctl")
def test_every_help_shows_examples(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    shown = capsys.readouterr().out
    examples = shown.partition("Examples:\n")[2]
    assert examples.startswith("    "), shown
    assert "goqctl " in examples.splitlines()[0], shown


def test_usage_errors_exit_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "No such command 'frobnicate'" in capsys.readouterr().err
    assert main(["poison", "list", "--limit", "0"]) == 2


def test_importing_the_commands_loads_neither_grpc_nor_the_kubernetes_client() -> None:
    """``--help`` and completion stay fast: the heavy clients load only in the commands that use them."""
    code = (
        "import sys, goq.cli.goqctl.app; "
        "print(sorted(m for m in ('grpc', 'kubernetes_asyncio', 'aiohttp', 'yaml', 'goq.client') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]"


def complete(shell_words: str, index: int) -> list[str]:
    """What the real bash completion script offers for ``shell_words`` at word ``index``."""
    script = (
        f"source <(goqctl completion bash); COMP_WORDS=({shell_words}); COMP_CWORD={index}; "
        '_goqctl_completion goqctl; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=True)
    return done.stdout.split()


def test_bash_completion_offers_commands_flags_and_their_choices() -> None:
    assert complete("goqctl poi", 1) == ["poison"]
    assert complete("goqctl poison ''", 2) == ["list", "redrive", "show"]
    assert complete("goqctl stats -o ''", 3) == ["text", "wide", "json", "yaml"]
    assert "--older-than" in complete("goqctl poison list --o", 3)


def test_zsh_completion_is_a_compdef_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef goqctl")
    assert "_GOQCTL_COMPLETE=zsh_complete" in script


def test_times_and_sizes_read_as_people_write_them() -> None:
    assert iso_time(1_764_892_800_123) == "2025-12-05T00:00:00.123Z"
    assert [age(s) for s in (-5, 42, 310, 2820, 5 * 3600, 3 * 86400)] == ["0s", "42s", "5m10s", "47m", "5h", "3d"]
    assert ago(1_764_892_800_000, 1_764_892_800 + 90) == "2025-12-05T00:00:00.000Z (90s ago)"
    assert [size(n) for n in (0, 1023, 1536, 3 * 1024**2 + 4, 5 * 1024**4)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "3.0 MiB",
        "5.0 TiB",
    ]


def test_tables_align_columns_and_wide_adds_its_own() -> None:
    table = Table(("ID", "PEER", "DETAIL"), [("a", "billing.shop", "x"), ("longer-id", "b", "y")], wide_from=2)
    assert table.render(wide=False) == "ID          PEER\na           billing.shop\nlonger-id   b"
    assert table.render(wide=True).splitlines()[0] == "ID          PEER           DETAIL"
    assert Table(("ID",), [], empty="nothing").render(wide=False) == "nothing"
    assert (
        fields({"identity": "orders", "largeBytesUploaded": 0}) == "identity:            orders\nlargeBytesUploaded:  0"
    )


def entry(peer: str, reason: str = "max-attempts", direction: str = "outbound", at_ms: int = 0) -> Poisoned:
    return Poisoned("id", direction, peer, reason, "", 2, at_ms, True, b"", {})


def test_poison_filters_select_by_peer_reason_direction_and_age() -> None:
    now = 10_000.0
    hour_old = entry("billing.shop", at_ms=int((now - 3600) * 1000))
    fresh = entry("billing.other", reason="forbidden", direction="inbound", at_ms=int((now - 10) * 1000))
    assert PoisonFilter.parse(peers=["billing"]).select([hour_old, fresh], now) == [hour_old, fresh]
    assert PoisonFilter.parse(peers=["billing.shop"]).select([hour_old, fresh], now) == [hour_old]
    assert PoisonFilter.parse(peers=["bill"]).select([hour_old, fresh], now) == []
    assert PoisonFilter.parse(reasons=["forbidden"]).select([hour_old, fresh], now) == [fresh]
    assert PoisonFilter.parse(direction="inbound").select([hour_old, fresh], now) == [fresh]
    assert PoisonFilter.parse(older_than="30m").select([hour_old, fresh], now) == [hour_old]
    assert PoisonFilter.parse(newer_than="1m").select([hour_old, fresh], now) == [fresh]
    assert PoisonFilter.parse(older_than="1s", newer_than="2h").select([hour_old, fresh], now) == [hour_old, fresh]
    assert not PoisonFilter.parse().active
    with pytest.raises(UsageError, match="--newer-than '1 hour' is not a duration"):
        PoisonFilter.parse(newer_than="1 hour")
    with pytest.raises(UsageError, match="selects nothing"):
        PoisonFilter.parse(older_than="2h", newer_than="1h")


def pod(name: str, ready: bool, env: list[dict[str, str]] | None = None) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "shop", "labels": {"goq.io/id": "orders"}},
        "spec": {"containers": [{"name": "goq-sidecar", "env": env or []}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}], "podIP": "10.0.0.1"},
    }


def test_identity_targeting_picks_a_ready_pod_and_its_sidecars_port() -> None:
    pods = [pod("orders-a", False), pod("orders-b", True), pod("orders-c", True)]
    assert choose_pod(pods, "orders", None, "shop")["metadata"]["name"] == "orders-b"
    assert choose_pod(pods, "orders", "orders-c", "shop")["metadata"]["name"] == "orders-c"
    with pytest.raises(TargetError, match="pod shop/orders-a is not ready"):
        choose_pod(pods, "orders", "orders-a", "shop")
    with pytest.raises(TargetError, match="none of the 1 pods of identity 'orders' in namespace shop is ready"):
        choose_pod(pods[:1], "orders", None, "shop")
    assert grpc_port(pods[0]) == 7701
    assert grpc_port(pod("x", True, [{"name": "GOQ_GRPC_LISTEN", "value": "127.0.0.1:9001"}])) == 9001


def test_port_forward_frames_drop_the_port_number_from_each_channels_first_frame() -> None:
    seen: set[int] = set()
    assert decode(b"\x00\x8d\x1e", seen) == (0, b"")  # port 7821, little-endian, on the data channel
    assert decode(b"\x01\x8d\x1e", seen) == (1, b"")
    assert decode(b"\x00PRI * HTTP/2.0", seen) == (0, b"PRI * HTTP/2.0")
    assert decode(b"\x01refused", seen) == (1, b"refused")


def goqueue(
    name: str, ready: str | None, reason: str = "Reconciled", worst: list[dict[str, str]] | None = None
) -> dict[str, object]:
    now = datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)
    status: dict[str, object] = {}
    if ready is not None:
        status = {
            "ready": ready,
            "readyPods": int(ready.split("/")[0]),
            "podCount": int(ready.split("/")[1]),
            "conditions": [
                {"type": "Ready", "status": "True" if reason == "Reconciled" else "False", "reason": reason}
            ],
            "worstPods": worst or [],
        }
    return {
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": f"{now:%Y-%m-%dT%H:%M:%SZ}"},
        "status": status,
    }


def test_list_rows_read_the_operators_status_and_say_health_in_one_word() -> None:
    queues = [
        goqueue("billing", None),
        goqueue("orders", "1/2", "PodsUnhealthy", [{"pod": "orders-1", "reason": "NoHeartbeat"}]),
    ]
    assert [health(q) for q in queues] == ["Unknown", "PodsUnhealthy"]
    now = datetime.datetime(2026, 12, 5, 0, 5, tzinfo=datetime.UTC)
    lines = list_table(queues, now, all_namespaces=True).render(wide=True).splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "IDENTITY",
        "READY",
        "PODS",
        "SENDQ",
        "RECVQ",
        "DELIVERED",
        "POISONED",
        "HEALTH",
        "AGE",
        "UNHEALTHY",
        "PROBLEM",
    ]
    assert lines[2].split() == [
        "shop",
        "orders",
        "1/2",
        "2",
        "0",
        "0",
        "0",
        "0",
        "PodsUnhealthy",
        "5m0s",
        "0",
        "orders-1:",
        "NoHeartbeat",
    ]


def test_status_covers_identities_with_pods_but_no_goqueue_and_those_asked_for() -> None:
    found = statuses(
        [goqueue("orders", "1/1")],
        [
            pod("stray-0", True)
            | {"metadata": {"name": "stray-0", "namespace": "shop", "labels": {"goq.io/id": "stray"}}}
        ],
        "shop",
        set(),
    )
    assert [(d["identity"], d["health"], len(d["podList"])) for d in found] == [
        ("orders", "Healthy", 0),
        ("stray", "NoGoQueue", 1),
    ]
    asked = statuses([], [], "shop", {"shipping"})
    assert [(d["namespace"], d["identity"], d["health"]) for d in asked] == [("shop", "shipping", "NoGoQueue")]
