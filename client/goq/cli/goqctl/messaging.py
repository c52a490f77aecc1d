"""send, receive, ack and nack: messages through one sidecar, and how they are shown."""

import base64
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from goq.cli.goqctl.errors import UsageError
from goq.cli.goqctl.humanize import iso_time, size
from goq.client import Client, Receipt, Received

LARGE_FILE = 1024 * 1024
"""Files over this many bytes are streamed, as large messages."""


def send(
    client: Client,
    to: str,
    payload: str | None,
    file: Path | None,
    *,
    persistent: bool,
    headers: dict[str, str],
    id: str | None,
    progress: bool,
) -> Receipt:
    """One message: a large file streamed (with a progress bar), anything else in one request."""
    if file is not None and payload is None and file.is_file() and file.stat().st_size > LARGE_FILE:
        bar = ProgressBar(sys.stderr) if progress or sys.stderr.isatty() else None
        try:
            return client.send_file(to, file, persistent=persistent, headers=headers, id=id, progress=bar)
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from exc
        finally:
            if bar is not None:
                bar.close()
    return client.send(to, read_payload(payload, file), persistent=persistent, headers=headers, id=id)


def read_payload(payload: str | None, file: Path | None) -> bytes:
    if file is not None and payload is not None:
        raise UsageError("give the payload as an argument or with --file, not both")
    if file is not None:
        try:
            return bytes(file.read_bytes())
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from exc
    if payload == "-":
        return sys.stdin.buffer.read()
    if payload is None:
        raise UsageError("no payload: give it as an argument, '-' for standard input, or --file")
    return payload.encode()


def parse_headers(items: tuple[str, ...]) -> dict[str, str]:
    headers = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise UsageError(f"header {item!r} must be NAME=VALUE")
        headers[name] = value
    return headers


def receive(client: Client, count: int, wait: float, follow: bool, no_ack: bool) -> Iterator[Received]:
    """Up to ``count`` messages within ``wait`` seconds (or forever with ``follow``)."""
    if count < 1:
        raise UsageError(f"--max must be at least 1, got {count}")
    if wait < 0:
        raise UsageError(f"--wait must not be negative, got {wait}")
    deadline = None if follow else time.monotonic() + wait
    in_flight = 1 if no_ack else min(count, 100)
    stream = client.receive(max_in_flight=in_flight, within=None if follow else wait)
    for number, message in enumerate(stream, 1):
        yield message
        if not follow and (number >= count or (deadline and time.monotonic() > deadline)):
            return


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


def message_json(m: Received) -> dict[str, Any]:
    """The fields of the REST API's received message (times in RFC 3339)."""
    return {
        "id": m.id,
        "from": m.sender,
        "to": m.to,
        "payload": base64.b64encode(m.payload).decode(),
        "headers": m.headers,
        "persistent": m.persistent,
        "attempt": m.attempt,
        "sentAt": iso_time(m.sent_at_ms),
        "large": m.large,
        "payloadSize": m.payload_size,
    }


def message_text(m: Received, wide: bool) -> str:
    """One line per message; ``wide`` adds when it was sent and its headers."""
    body = f"<{size(m.payload_size)}, large>" if m.large else printable(m.payload)
    line = f"{m.id}  from {m.sender}  attempt {m.attempt}  {body}"
    if wide:
        headers = ",".join(f"{k}={v}" for k, v in sorted(m.headers.items()))
        line += f"  sent {iso_time(m.sent_at_ms)}" + (f"  headers {headers}" if headers else "")
    return line


def printable(payload: bytes) -> str:
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return f"<{len(payload)} bytes>"
    return text if text.isprintable() else f"<{len(payload)} bytes>"
