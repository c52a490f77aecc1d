"""The order service of the shop example: it takes orders and sends each to billing through its sidecar.

It only knows its sidecar (``goq.client``, which finds it at 127.0.0.1:7701 or ``$GOQ_SIDECAR``) and the
identity of its peer (``billing``). Every order is a persistent message: once ``send`` returns, it is in
MongoDB and will reach billing, even if billing's sidecar is down for a while.

Environment: ``ORDERS_COUNT`` (how many; 0: without end), ``ORDERS_INTERVAL`` (seconds between orders;
0: all at once on one stream), ``ORDERS_TO`` (default ``billing``), ``ORDERS_START`` (first order number).
"""

import asyncio
import json
import os
import sys
import time

from goq.client import AsyncClient, ClientError, Outgoing, Receipt, UnavailableError


def say(text: str) -> None:
    print(f"orders: {text}", flush=True)


def order(number: int) -> bytes:
    return json.dumps({"order": number, "item": f"book-{number % 7}", "amount": 10 + number % 90}).encode()


async def wait_for_sidecar(goq: AsyncClient) -> None:
    """The sidecar starts beside us: ask until it answers."""
    while True:
        try:
            await goq.stats()
            return
        except UnavailableError:
            await asyncio.sleep(0.5)


async def send_all(goq: AsyncClient, to: str, first: int, count: int) -> None:
    receipts = await goq.send_many([Outgoing(to, order(n)) for n in range(first, first + count)])
    accepted = [n for n, r in zip(range(first, first + count), receipts, strict=True) if isinstance(r, Receipt)]
    say(f"accepted orders {first}..{first + count - 1}: {len(accepted)} of {count} queued for {to}")
    for number in accepted:
        print(f"orders: order {number} accepted", flush=True)


async def send_steadily(goq: AsyncClient, to: str, first: int, count: int, interval: float) -> None:
    number = first
    while count == 0 or number < first + count:
        started = time.monotonic()
        try:
            receipt = await goq.send(to, order(number))
            say(f"order {number} accepted ({receipt.state}, id {receipt.id})")
            number += 1
        except ClientError as exc:
            say(f"order {number} not accepted, trying again: {exc}")
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


async def main() -> int:
    count = int(os.environ.get("ORDERS_COUNT", "0"))
    interval = float(os.environ.get("ORDERS_INTERVAL", "1"))
    to = os.environ.get("ORDERS_TO", "billing")
    first = int(os.environ.get("ORDERS_START", "1"))
    async with AsyncClient() as goq:
        say(f"sidecar at {goq.target}; waiting for it")
        await wait_for_sidecar(goq)
        say(f"sending {count or 'endless'} orders to {to}")
        if interval == 0 and count:
            await send_all(goq, to, first, count)
        else:
            await send_steadily(goq, to, first, count, interval)
        say("done; idle")
        await asyncio.Event().wait()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        sys.exit(0)
