"""The billing service of the shop example: it receives orders from its sidecar and invoices them.

Each message is acknowledged only after it is handled, so a message billing has not acknowledged comes
back (at least once). The sidecar removes duplicates of a message id; an order that arrives twice
anyway (after a lease ran out) is recognised by its number and invoiced once.
"""

import asyncio
import json
import sys

from goq.client import AsyncClient, ClientError


def say(text: str) -> None:
    print(f"billing: {text}", flush=True)


async def main() -> None:
    invoiced: set[int] = set()
    async with AsyncClient() as goq:
        say(f"sidecar at {goq.target}; receiving")
        while True:
            try:
                async for message in goq.receive(max_in_flight=500):
                    number = int(json.loads(message.payload)["order"])
                    if number not in invoiced:
                        invoiced.add(number)
                        say(f"invoiced order {number} from {message.sender} (attempt {message.attempt})")
                    await goq.ack(message.id)
                    if len(invoiced) % 100 == 0:
                        say(f"{len(invoiced)} orders invoiced so far")
            except ClientError as exc:
                say(f"sidecar not reachable ({exc.__class__.__name__}); asking again")
                await asyncio.sleep(0.5)  # the sidecar is (re)starting


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
