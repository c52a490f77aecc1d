"""goqctl end to end against real sidecars: send, receive, poison list and redrive; exit codes scripts rely on."""

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

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


def test_send_file_streams_a_large_message_with_a_progress_bar_and_receive_output_writes_it(
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
    assert "is a large message (3145732 bytes): receive it with --output FILE" in without.stderr

    target = tmp_path / "received.bin"
    received = goqctl(group["billing"], "receive", "--wait", "60", "--output", str(target))
    assert received.returncode == 0, received.stderr
    assert received.stdout.startswith(f"{receipt['id']}  from orders.default  attempt ")
    assert received.stdout.strip().endswith("<3145732 bytes, large>")
    assert target.read_bytes() == source.read_bytes()
    assert goqctl(group["billing"], "receive", "--max", "2", "--output", str(target)).returncode == 2
