"""The bytes that pad each benchmark message to its size: random, as a compressed or encrypted payload is.

MongoDB compresses its data files and journal (snappy); RabbitMQ and NATS store bytes as given. Padding of one
repeated byte would let GoQ's store write almost nothing per message, which no real payload allows. Each
message takes its padding from a different place in one random block, so neighbouring messages do not repeat
each other either, and making a message costs a slice, not a random number generator's time.
"""

import itertools
import random

BLOCK = random.Random(1).randbytes(1 << 20)
STEP = 7919  # a prime: consecutive messages start far apart in the block
_next = itertools.count()


def filler(size: int) -> bytes:
    """``size`` random bytes (at most half of BLOCK), different from the last message's."""
    start = (next(_next) * STEP) % (len(BLOCK) - size)
    return BLOCK[start : start + size]
