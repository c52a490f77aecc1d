"""One large message end to end: a real mongod, two sidecar processes (orders -> billing), 4 GiB by default.

The producer streams a generated payload with ``SendLarge``; the consumer receives it and streams it back
with ``ReadPayload``; both sides hash what they see. Reported as JSON: sizes, times, throughput, and each
sidecar's peak resident memory (VmHWM), which must not grow with the message. Not part of the test suite:

    .venv/bin/python bench/large.py                 # 4 GiB persistent (needs ~10 GB of free disk)
    .venv/bin/python bench/large.py --size 1Gi --transient
"""

import argparse
import asyncio
import hashlib
import json
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from goq.client import AsyncClient
from goq.devenv.mongo import MongoServer
from goq.devenv.sidecars import SidecarProcess, hmac_keys, local_sidecars
from goq.queue_spec import parse_size

MiB = 1024 * 1024


def peak_rss(pid: int) -> int:
    """VmHWM of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def payload(size: int, digest: "hashlib._Hash") -> AsyncIterator[bytes]:
    block = random.Random(1).randbytes(MiB)
    sent, index = 0, 0
    while sent < size:
        n = min(MiB, size - sent)
        data = index.to_bytes(8, "big") + block[8:n] if n >= 8 else block[:n]
        digest.update(data)
        yield data
        sent += n
        index += 1


async def run(size: int, persistent: bool, sidecars: dict[str, SidecarProcess]) -> dict[str, object]:
    orders, billing = sidecars["orders"], sidecars["billing"]
    sent_digest, got_digest = hashlib.sha256(), hashlib.sha256()
    start = time.monotonic()
    async with AsyncClient(orders.grpc_target) as producer, AsyncClient(billing.grpc_target) as consumer:
        receipt = await producer.send_large("billing", payload(size, sent_digest), size=size, persistent=persistent)
        uploaded = time.monotonic()
        message = await anext(aiter(consumer.receive(max_in_flight=1)))
        arrived = time.monotonic()
        read = 0
        async for data in consumer.read_payload(message.id):
            got_digest.update(data)
            read += len(data)
        done = time.monotonic()
        await consumer.ack(message.id)
    assert message.id == receipt.id
    return {
        "bytes": size,
        "persistent": persistent,
        "intact": read == size and got_digest.digest() == sent_digest.digest(),
        "upload_s": round(uploaded - start, 1),
        "transfer_s": round(arrived - uploaded, 1),
        "read_s": round(done - arrived, 1),
        "total_s": round(done - start, 1),
        "end_to_end_MiB_per_s": round(size / MiB / (done - start), 1),
        "peak_rss_MB": {n: round(peak_rss(s.process.pid) / 1e6, 1) for n, s in sidecars.items() if s.process},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="4Gi", help="payload size: bytes or a quantity (default 4Gi)")
    parser.add_argument("--transient", action="store_true", help="a transient message (spill area, no GridFS)")
    args = parser.parse_args()
    size = parse_size(args.size, "--size", 0)
    workdir = Path(tempfile.mkdtemp(prefix="goq-bench-large-"))
    mongo = MongoServer(workdir / "mongo")
    mongo.start()
    env = {
        "GOQ_MONGODB_URI": mongo.uri,
        "GOQ_HMAC_KEYS": hmac_keys({"bench": b"b" * 32}),
        "GOQ_QUEUE_SPEC": json.dumps({"maxMessageSize": "4Gi"}),
        "GOQ_SPILL_LIMIT_BYTES": str(5 * 1024**3),
        "GOQ_LOG_LEVEL": "WARNING",
    }
    sidecars = local_sidecars(["orders", "billing"], workdir / "sidecars", env)
    try:
        for sidecar in sidecars.values():
            sidecar.start()
        print(json.dumps(asyncio.run(run(size, not args.transient, sidecars))))
    finally:
        for sidecar in sidecars.values():
            sidecar.stop()
        mongo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
