"""``goqctl``: send, receive and inspect messages through a GoQ sidecar.

Exit codes: 0 done; 1 the sidecar refused (bad message, queue full, unknown id); 2 bad arguments;
3 the sidecar could not be reached or cannot store now. ``-o json`` prints JSON for scripts.
"""

import argparse
import base64
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from goq.cli.common import parser as base_parser
from goq.client import Client, ClientError, Poisoned, Receipt, Received, UnavailableError

EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3


class UsageError(Exception):
    """Arguments that parse but do not make sense together."""


def build_parser() -> argparse.ArgumentParser:
    p = base_parser("goqctl", "Send, receive and inspect GoQ messages through a sidecar.")
    p.add_argument(
        "--sidecar",
        default=os.environ.get("GOQ_SIDECAR", "127.0.0.1:7701"),
        help="the sidecar's application gRPC address (default: $GOQ_SIDECAR or %(default)s)",
    )
    p.add_argument("-o", "--output", choices=["text", "json"], default="text", help="output format")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = sub.add_parser("send", help="send a message")
    send.add_argument("to", help='"<identity>" or "<identity>.<namespace>"')
    send.add_argument("payload", nargs="?", help="the payload as text; '-' reads standard input")
    send.add_argument(
        "--file", type=Path, help="read the payload from a file (over 1 MiB: streamed, as a large message)"
    )
    send.add_argument(
        "--progress", action="store_true", help="show a progress bar for --file on stderr (default: on a terminal)"
    )
    send.add_argument("--transient", action="store_true", help="not persistent: kept in memory only")
    send.add_argument("-H", "--header", action="append", default=[], metavar="NAME=VALUE", help="a header (repeatable)")
    send.add_argument("--id", help="idempotency key: the same id is not sent twice")

    receive = sub.add_parser("receive", help="receive messages (and acknowledge them)")
    receive.add_argument("--max", type=int, default=1, help="stop after this many (default 1)")
    receive.add_argument("--wait", type=float, default=5.0, help="seconds to wait for them (default 5)")
    receive.add_argument("--follow", "-f", action="store_true", help="keep receiving until interrupted")
    receive.add_argument("--no-ack", action="store_true", help="leave them leased: they come back later")
    receive.add_argument(
        "--output",
        dest="output_file",
        type=Path,
        metavar="FILE",
        help="write the payload to FILE, streamed (needed for large messages; with --max 1)",
    )

    ack = sub.add_parser("ack", help="acknowledge leased messages")
    ack.add_argument("ids", nargs="+")

    nack = sub.add_parser("nack", help="give a leased message back, or poison it")
    nack.add_argument("id")
    nack.add_argument("--poison", action="store_true", help="send it to the poison queue instead of requeueing")
    nack.add_argument("--delay", type=float, default=0.0, help="seconds before it is handed out again")
    nack.add_argument("--reason", default="", help="why (kept with a poisoned message)")

    sub.add_parser("stats", help="queue depths and totals")

    poison = sub.add_parser("poison", help="the poison queue")
    poison_sub = poison.add_subparsers(dest="poison_command", required=True, metavar="ACTION")
    listing = poison_sub.add_parser("list", help="the newest poisoned messages")
    listing.add_argument("--limit", type=int, default=50)
    show = poison_sub.add_parser("show", help="one poisoned message, payload included")
    show.add_argument("id")
    redrive = poison_sub.add_parser("redrive", help="hand poisoned messages back for delivery")
    redrive.add_argument("ids", nargs="*")
    redrive.add_argument("--all", action="store_true", help="every message listed (up to --limit)")
    redrive.add_argument("--limit", type=int, default=1000)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``goqctl``."""
    args = build_parser().parse_args(argv)
    try:
        with Client(args.sidecar, timeout=30.0) as client:
            return run(client, args)
    except UsageError as exc:
        print(f"goqctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnavailableError as exc:
        print(f"goqctl: sidecar at {args.sidecar}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ClientError as exc:
        print(f"goqctl: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


def run(client: Client, args: argparse.Namespace) -> int:
    out = Output(args.output)
    match args.command:
        case "send":
            receipt = send(client, args)
            out.emit(asdict(receipt), f"{receipt.id} {receipt.state}")
        case "receive":
            if args.output_file is not None and args.max != 1:
                raise UsageError("--output writes one payload: use it with --max 1")
            for message in receive(client, args):
                if args.output_file is not None:
                    save_payload(client, message, args.output_file)
                elif message.large:  # it cannot be printed: give it back for a receive with --output
                    client.nack(message.id, requeue=True)
                    print(
                        f"goqctl: {message.id} is a large message ({message.payload_size} bytes): "
                        "receive it with --output FILE",
                        file=sys.stderr,
                    )
                    return EXIT_REFUSED
                if not args.no_ack:
                    client.ack(message.id)
                out.emit(message_json(message), message_text(message))
        case "ack":
            unknown = client.ack(*args.ids)
            out.emit({"acknowledged": [i for i in args.ids if i not in unknown], "unknown": unknown}, "")
            for message_id in unknown:
                print(f"goqctl: {message_id}: not leased (unknown or already acknowledged)", file=sys.stderr)
            return EXIT_REFUSED if unknown else 0
        case "nack":
            client.nack(args.id, requeue=not args.poison, delay=args.delay, reason=args.reason)
            out.emit({"id": args.id, "poisoned": args.poison}, f"{args.id} {'poisoned' if args.poison else 'requeued'}")
        case "stats":
            stats = client.stats()
            out.emit(stats, "\n".join(f"{k:<14}{v}" for k, v in stats.items()))
        case "poison":
            return poison(client, args, out)
    return 0


def poison(client: Client, args: argparse.Namespace, out: "Output") -> int:
    match args.poison_command:
        case "list":
            entries = client.poisoned(args.limit)
            out.emit([poisoned_json(e, payload=False) for e in entries], poison_table(entries))
        case "show":
            found = [e for e in client.poisoned(1000) if e.id == args.id]
            if not found:
                print(f"goqctl: {args.id}: not in the poison queue", file=sys.stderr)
                return EXIT_REFUSED
            entry = found[0]
            details = poisoned_json(entry, payload=True)
            out.emit(details, "\n".join(f"{k:<12}{v}" for k, v in details.items()))
        case "redrive":
            if args.all == bool(args.ids):
                raise UsageError("poison redrive takes message ids or --all, not both and not neither")
            ids = [e.id for e in client.poisoned(args.limit)] if args.all else args.ids
            handed_back = client.redrive(ids)
            missing = [i for i in ids if i not in handed_back]
            out.emit({"redriven": handed_back, "notFound": missing}, "\n".join(f"{i} redriven" for i in handed_back))
            for message_id in missing:
                print(f"goqctl: {message_id}: not in the poison queue", file=sys.stderr)
            return EXIT_REFUSED if missing else 0
    return 0


def receive(client: Client, args: argparse.Namespace) -> Iterator[Received]:
    if args.max < 1:
        raise UsageError(f"--max must be at least 1, got {args.max}")
    if args.wait < 0:
        raise UsageError(f"--wait must not be negative, got {args.wait}")
    deadline = None if args.follow else time.monotonic() + args.wait
    in_flight = 1 if args.no_ack else min(args.max, 100)
    stream = client.receive(max_in_flight=in_flight, within=None if args.follow else args.wait)
    for count, message in enumerate(stream, 1):
        yield message
        if not args.follow and (count >= args.max or (deadline and time.monotonic() > deadline)):
            return


LARGE_FILE = 1024 * 1024
"""Files over this many bytes are streamed, as large messages."""


def send(client: Client, args: argparse.Namespace) -> Receipt:
    """One message: a large file streamed (with a progress bar), anything else in one request."""
    headers, persistent = parse_headers(args.header), not args.transient
    if args.file is not None and args.payload is None and args.file.is_file():
        size = args.file.stat().st_size
        if size > LARGE_FILE:
            bar = ProgressBar(sys.stderr) if args.progress or sys.stderr.isatty() else None
            try:
                return client.send_file(
                    args.to, args.file, persistent=persistent, headers=headers, id=args.id, progress=bar
                )
            except OSError as exc:
                raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
            finally:
                if bar is not None:
                    bar.close()
    return client.send(args.to, read_payload(args), persistent=persistent, headers=headers, id=args.id)


def save_payload(client: Client, message: Received, path: Path) -> None:
    """Write the message's payload to ``path``: streamed for a large message."""
    try:
        with path.open("wb") as file:
            if message.large:
                for data in client.read_payload(message.id):
                    file.write(data)
            else:
                file.write(message.payload)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from exc


class ProgressBar:
    """``[#####.....]  52%  532.0/1024.0 MiB`` on one line of a stream, redrawn as bytes go."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total if total else 100
        if percent == self.shown:
            return
        self.shown = percent
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        mib = 1024 * 1024
        self.stream.write(f"\r[{bar}] {percent:3d}%  {done / mib:.1f}/{total / mib:.1f} MiB")
        self.stream.flush()

    def close(self) -> None:
        if self.shown >= 0:
            self.stream.write("\n")
            self.stream.flush()


def read_payload(args: argparse.Namespace) -> bytes:
    if args.file is not None and args.payload is not None:
        raise UsageError("give the payload as an argument or with --file, not both")
    if args.file is not None:
        try:
            return bytes(args.file.read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from exc
    if args.payload == "-":
        return sys.stdin.buffer.read()
    if args.payload is None:
        raise UsageError("no payload: give it as an argument, '-' for standard input, or --file")
    return str(args.payload).encode()


def parse_headers(items: list[str]) -> dict[str, str]:
    headers = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise UsageError(f"header {item!r} must be NAME=VALUE")
        headers[name] = value
    return headers


def message_json(m: Received) -> dict[str, Any]:
    return {
        "id": m.id,
        "from": m.sender,
        "to": m.to,
        "payload": base64.b64encode(m.payload).decode(),
        "headers": m.headers,
        "persistent": m.persistent,
        "attempt": m.attempt,
        "sentAt": m.sent_at_ms,
        "large": m.large,
        "payloadSize": m.payload_size,
    }


def message_text(m: Received) -> str:
    if m.large:
        return f"{m.id}  from {m.sender}  attempt {m.attempt}  <{m.payload_size} bytes, large>"
    return f"{m.id}  from {m.sender}  attempt {m.attempt}  {printable(m.payload)}"


def poisoned_json(e: Poisoned, *, payload: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": e.id,
        "direction": e.direction,
        "peer": e.peer,
        "reason": e.reason,
        "detail": e.detail,
        "attempts": e.attempts,
        "poisonedAt": e.poisoned_at_ms,
        "persistent": e.persistent,
    }
    if payload:
        fields["payload"] = printable(e.payload)
        fields["headers"] = e.headers
    return fields


def poison_table(entries: list[Poisoned]) -> str:
    if not entries:
        return "the poison queue is empty"
    now = time.time() * 1000
    rows = [f"{'ID':<30} {'DIRECTION':<9} {'PEER':<24} {'REASON':<15} {'ATTEMPTS':>8} {'AGE':>8}"]
    for e in entries:
        age = f"{(now - e.poisoned_at_ms) / 1000:.0f}s"
        rows.append(f"{e.id:<30} {e.direction:<9} {e.peer:<24} {e.reason:<15} {e.attempts:>8} {age:>8}")
    return "\n".join(rows)


def printable(payload: bytes) -> str:
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return f"<{len(payload)} bytes>"
    return text if text.isprintable() else f"<{len(payload)} bytes>"


class Output:
    """Prints each result as text or as one JSON document per line."""

    def __init__(self, form: str) -> None:
        self.form = form

    def emit(self, data: Any, text: str) -> None:
        if self.form == "json":
            print(json.dumps(data), flush=True)
        elif text:
            print(text, flush=True)
