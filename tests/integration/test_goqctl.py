"""goqctl end to end against real sidecars: send, receive, poison list and redrive; exit codes scripts rely on."""

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from goq.devenv.sidecars import SidecarProcess

Sidecars = Callable[..., dict[str, SidecarProcess]]
GOQCTL = str(Path(sys.executable).with_name("goqctl"))


def goqctl(sidecar: SidecarProcess | str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    target = sidecar if isinstance(sidecar, str) else sidecar.grpc_target
    return subprocess.run(
        [GOQCTL, "--sidecar", target, *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_send_then_receive_prints_the_message_and_acknowledges_it(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    sent = goqctl(group["orders"], "-o", "json", "send", "billing", "hello there", "-H", "kind=greeting")
    assert sent.returncode == 0, sent.stderr
    receipt = json.loads(sent.stdout)
    assert receipt["state"] == "queued"

    received = goqctl(group["billing"], "receive", "--wait", "60")
    assert received.returncode == 0, received.stderr
    assert received.stdout.startswith(f"{receipt['id']}  from orders.default  attempt 1  hello there")
    stats = json.loads(goqctl(group["billing"], "-o", "json", "stats").stdout)
    assert (stats["received"], stats["acknowledged"]) == (1, 1)


def test_payload_from_standard_input_and_json_output(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    assert goqctl(group["orders"], "send", "billing", "-", "--transient", stdin=b"from stdin").returncode == 0
    (line,) = goqctl(group["billing"], "-o", "json", "receive", "--wait", "60").stdout.splitlines()
    message = json.loads(line)
    assert (message["from"], message["persistent"]) == ("orders.default", False)
    assert message["payload"] == "ZnJvbSBzdGRpbg=="  # base64 of "from stdin"


def test_poison_list_show_and_redrive_a_really_poisoned_message(sidecars: Sidecars) -> None:
    policy = '{"maxAttempts": 2, "initialBackoff": "50ms", "maxBackoff": "50ms"}'
    group = sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=policy)
    group["orders"].start()  # billing is down: the message is poisoned
    receipt = json.loads(goqctl(group["orders"], "-o", "json", "send", "billing", "lost letter").stdout)
    for _ in range(600):
        listed = json.loads(goqctl(group["orders"], "-o", "json", "poison", "list").stdout)
        if listed:
            break
        time.sleep(0.05)
    assert [(e["id"], e["reason"], e["attempts"]) for e in listed] == [(receipt["id"], "max-attempts", 2)]
    table = goqctl(group["orders"], "poison", "list").stdout
    assert "max-attempts" in table
    assert "billing.default" in table
    shown = goqctl(group["orders"], "poison", "show", receipt["id"]).stdout
    assert "lost letter" in shown

    group["billing"].start()
    redriven = goqctl(group["orders"], "poison", "redrive", receipt["id"])
    assert redriven.returncode == 0, redriven.stderr
    assert redriven.stdout.strip() == f"{receipt['id']} redriven"
    received = goqctl(group["billing"], "receive", "--wait", "60")
    assert "lost letter" in received.stdout
    assert goqctl(group["orders"], "poison", "list").stdout.strip() == "the poison queue is empty"


def test_exit_codes_say_what_went_wrong(sidecars: Sidecars, tmp_path: Path) -> None:
    orders = sidecars("orders")["orders"]
    refused = goqctl(orders, "send", "Not_An_Identity", "x")
    assert refused.returncode == 1
    assert refused.stderr.startswith("goqctl: destination identity 'Not_An_Identity'")
    assert len(refused.stderr.strip().splitlines()) == 1

    usage = goqctl(orders, "send", "billing")
    assert usage.returncode == 2
    assert usage.stderr.strip() == "goqctl: no payload: give it as an argument, '-' for standard input, or --file"
    assert goqctl(orders, "send", "billing", "--file", str(tmp_path / "missing")).returncode == 2
    assert goqctl(orders, "frobnicate").returncode == 2

    unknown = goqctl(orders, "ack", "no-such-id")
    assert unknown.returncode == 1
    assert "no-such-id: not leased" in unknown.stderr

    down = goqctl("127.0.0.1:1", "stats")
    assert down.returncode == 3
    assert down.stderr.startswith("goqctl: sidecar at 127.0.0.1:1:")


def test_send_file_streams_a_large_message_with_a_progress_bar_and_receive_save_to_writes_it(
    sidecars: Sidecars, tmp_path: Path
) -> None:
    group = sidecars("orders", "billing")
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * (12 * 1024) + b"tail")  # 3 MiB and 4 bytes: over the 1 MiB threshold
    sent = goqctl(group["orders"], "-o", "json", "send", "billing", "--file", str(source), "--progress")
    assert sent.returncode == 0, sent.stderr
    assert "100%" in sent.stderr
    assert "3.0/3.0 MiB" in sent.stderr
    receipt = json.loads(sent.stdout)

    without = goqctl(group["billing"], "receive", "--wait", "60")
    assert without.returncode == 1
    assert "is a large message (3145732 bytes): receive it with --save-to FILE" in without.stderr

    target = tmp_path / "received.bin"
    received = goqctl(group["billing"], "receive", "--wait", "60", "--save-to", str(target))
    assert received.returncode == 0, received.stderr
    assert received.stdout.startswith(f"{receipt['id']}  from orders.default  attempt ")
    assert received.stdout.strip().endswith("<3.0 MiB, large>")
    assert target.read_bytes() == source.read_bytes()
    assert goqctl(group["billing"], "receive", "--max", "2", "--save-to", str(target)).returncode == 2


def test_output_flags_work_after_the_subcommand_in_every_format(sidecars: Sidecars) -> None:
    orders = sidecars("orders")["orders"]
    after = goqctl(orders, "stats", "-o", "json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["identity"] == "orders.default"
    assert json.loads(goqctl(orders, "stats", "--output=json").stdout)["identity"] == "orders.default"
    document = yaml.safe_load(goqctl(orders, "stats", "-o", "yaml").stdout)
    assert document["identity"] == "orders.default"
    assert document["sent"] == 0

    text = goqctl(orders, "stats").stdout.splitlines()
    pairs = dict(line.split(maxsplit=1) for line in text)
    assert pairs["identity:"] == "orders.default"
    assert pairs["largeBytesUploaded:"] == "0 B"
    values = {line.index(value) for line, value in zip(text, pairs.values(), strict=True)}
    assert len(values) == 1, "values are aligned in one column"
    assert all(line[min(values) - 2 : min(values)] in (": ", "  ") for line in text), "names never run into values"

    last_wins = goqctl(orders, "-o", "yaml", "stats", "-o", "json")
    assert json.loads(last_wins.stdout)["identity"] == "orders.default"
    wrong = goqctl(orders, "stats", "-o", "xml")
    assert wrong.returncode == 2
    assert "'xml' is not one of 'text', 'wide', 'json', 'yaml'" in wrong.stderr
    old_flag = goqctl(orders, "receive", "--output", "payload.bin")
    assert old_flag.returncode == 2
    assert "to write the payload to a file use --save-to FILE" in old_flag.stderr


def test_a_closed_pipe_ends_goqctl_quietly_and_leaves_the_message_leased(sidecars: Sidecars) -> None:
    group = sidecars("orders", "billing")
    assert goqctl(group["orders"], "send", "billing", "kept").returncode == 0
    for args in (["stats"], ["receive", "--wait", "60"]):
        process = subprocess.Popen(
            [GOQCTL, "--sidecar", group["billing"].grpc_target, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdout is not None
        process.stdout.close()  # the reader is gone before goqctl writes, as `| head -0` would be
        _, stderr = process.communicate(timeout=60)
        assert (process.returncode, stderr) == (141, b""), stderr.decode()
    stats = json.loads(goqctl(group["billing"], "stats", "-o", "json").stdout)
    assert (stats["received"], stats["acknowledged"]) == (1, 0), "printed nowhere, so not acknowledged"
    pipeline = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{GOQCTL} --sidecar {group['billing'].grpc_target} stats | head -1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pipeline.stdout.split() == ["identity:", "billing.default"]
    assert "Traceback" not in pipeline.stderr
    assert pipeline.returncode in (0, 141)


def poisoned(sidecar: SidecarProcess, count: int) -> list[dict[str, str]]:
    for _ in range(600):
        listed: list[dict[str, str]] = json.loads(goqctl(sidecar, "-o", "json", "poison", "list").stdout)
        if len(listed) >= count:
            return listed
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} messages were poisoned")


def test_poison_list_and_redrive_filter_by_peer_reason_and_age(sidecars: Sidecars) -> None:
    policy = '{"maxAttempts": 2, "initialBackoff": "50ms", "maxBackoff": "50ms"}'
    group = sidecars("orders", "billing", start=False, GOQ_RETRY_POLICY=policy)
    group["orders"].start()  # billing and shipping are down: both messages are poisoned
    to_billing = json.loads(goqctl(group["orders"], "-o", "json", "send", "billing", "for billing").stdout)["id"]
    to_shipping = json.loads(goqctl(group["orders"], "-o", "json", "send", "shipping", "for shipping").stdout)["id"]
    listed = poisoned(group["orders"], 2)
    assert all(e["poisonedAt"].endswith("Z") and e["poisonedAt"][:2] == "20" for e in listed), "RFC 3339, not epoch"

    def ids(*args: str) -> list[str]:
        done = goqctl(group["orders"], "poison", "list", "-o", "json", *args)
        assert done.returncode == 0, done.stderr
        return [e["id"] for e in json.loads(done.stdout)]

    assert ids("--peer", "billing") == [to_billing]
    assert ids("--peer", "shipping.default") == [to_shipping]
    assert ids("--peer", "shipping.elsewhere") == []
    assert sorted(ids("--reason", "max-attempts")) == sorted([to_billing, to_shipping])
    assert ids("--reason", "forbidden") == []
    assert ids("--direction", "inbound") == []
    assert sorted(ids("--newer-than", "1h")) == sorted([to_billing, to_shipping])
    assert ids("--older-than", "1h") == []
    table = goqctl(group["orders"], "poison", "list", "--older-than", "1h")
    assert table.stdout.strip() == "no poisoned message matches"
    wide = goqctl(group["orders"], "poison", "list", "-o", "wide", "--peer", "billing").stdout.splitlines()
    assert wide[0].split() == ["ID", "DIRECTION", "PEER", "REASON", "ATTEMPTS", "AGE", "POISONED-AT", "DETAIL"]
    assert wide[1].split()[:5] == [to_billing, "outbound", "billing.default", "max-attempts", "2"]
    shown = goqctl(group["orders"], "poison", "show", to_billing).stdout
    assert re.search(r"^poisonedAt: +20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ \(\d+s ago\)$", shown, re.M), shown

    bad = goqctl(group["orders"], "poison", "list", "--older-than", "5 minutes")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "goqctl: --older-than '5 minutes' is not a duration; write a number and a unit: ms, s, m or h "
        "(e.g. '250ms', '1h30m')"
    )
    empty_window = goqctl(group["orders"], "poison", "list", "--older-than", "1h", "--newer-than", "5m")
    assert empty_window.returncode == 2
    assert "selects nothing" in empty_window.stderr
    mixed = goqctl(group["orders"], "poison", "redrive", to_billing, "--peer", "billing")
    assert mixed.returncode == 2

    group["billing"].start()
    dry = goqctl(group["orders"], "poison", "redrive", "--all", "--peer", "billing", "--dry-run")
    assert dry.stdout.strip() == f"{to_billing} would be redriven"
    assert sorted(ids()) == sorted([to_billing, to_shipping]), "a dry run changes nothing"
    redriven = goqctl(group["orders"], "poison", "redrive", "--all", "--peer", "billing", "--newer-than", "1h")
    assert redriven.returncode == 0, redriven.stderr
    assert redriven.stdout.strip() == f"{to_billing} redriven"
    assert ids() == [to_shipping], "the message for the long-gone destination stays"
    assert "for billing" in goqctl(group["billing"], "receive", "--wait", "60").stdout
    nothing = goqctl(group["orders"], "poison", "redrive", "--all", "--peer", "billing")
    assert (nothing.returncode, nothing.stdout.strip()) == (0, "nothing to redrive")
