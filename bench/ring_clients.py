"""Producer and consumer processes of the scale scenario: many identities exchanging messages at once.

``ring_clients.py produce|consume --ring FILE --count N``: FILE lists ``[identity, gRPC target]`` pairs; each
identity sends N persistent messages to the next one in the ring over ``SendStream``, and each receives from
the previous one over its own ``Receive`` stream, all at once from one process per role. The producer's JSON
names the ids each identity's sidecar accepted; the consumer's the ids each identity received. The consumer
prints ``ready`` once every stream is attached, and stops when every identity has N, on SIGUSR1 (the runner's
sign that nothing is on its way any more: some sends were refused or poisoned), or after ``--within`` seconds.
"""

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from clients import Arrivals, consume_grpc, produce_stream, tag_of


async def produce(ring: list[tuple[str, str]], count: int, size: int, tag: bytes) -> dict[str, object]:
    accepted: dict[str, list[str]] = {identity: [] for identity, _ in ring}
    sends = [
        produce_stream(target, ring[(i + 1) % len(ring)][0], count, size, True, 0.0, tag, accepted[identity])
        for i, (identity, target) in enumerate(ring)
    ]
    total = sum(await asyncio.gather(*sends))
    return {"accepted": total, "accepted_ids": accepted}


async def consume(ring: list[tuple[str, str]], count: int, size: int, within: float, tag: bytes) -> dict[str, object]:
    arrivals = [Arrivals(count, tag) for _ in ring]
    attached = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def stopped(signum: int, frame: object) -> None:
        if not loop.is_closed():  # a sign that comes while the results are written changes nothing
            loop.call_soon_threadsafe(stop.set)

    signal.signal(signal.SIGUSR1, stopped)  # not the loop's handler: asyncio resets that to the default on close

    def ready() -> None:
        nonlocal attached
        attached += 1
        if attached == len(ring):
            print("ready", flush=True)

    left = await asyncio.gather(
        *(consume_grpc(target, a, within, size, ready, stop) for (_, target), a in zip(ring, arrivals, strict=True))
    )
    return {
        "received": sum(len(a.latencies) for a in arrivals),
        "duplicates": sum(a.duplicates for a in arrivals),
        "stale": sum(a.stale for a in arrivals),
        "start": min(a.start for a in arrivals),
        "first": min((a.first for a in arrivals if a.first), default=0.0),
        "last": max(a.last for a in arrivals),
        "latencies": [x for a in arrivals for x in a.latencies],
        "left_in_flight": sum(left),
        "received_ids": {identity: sorted(a.ids) for (identity, _), a in zip(ring, arrivals, strict=True)},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["produce", "consume"])
    parser.add_argument("--ring", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True, help="messages per identity")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--within", type=float, default=600.0)
    parser.add_argument("--queue", default="ring")
    args = parser.parse_args()
    ring = [(str(identity), str(target)) for identity, target in json.loads(args.ring.read_text())]
    tag = tag_of(args.queue)
    if args.role == "produce":
        start = time.time()
        result = {**asyncio.run(produce(ring, args.count, args.size, tag)), "start": start, "end": time.time()}
    else:
        result = asyncio.run(consume(ring, args.count, args.size, args.within, tag))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
