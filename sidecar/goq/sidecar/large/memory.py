"""Large buffers straight from the operating system, so that a large message leaves no trace in RSS.

glibc serves a freed-then-reallocated 1 MiB buffer from the heap once its dynamic mmap threshold has
grown past that size; chunks of large messages (allocated by gRPC, protobuf and PyMongo, freed in
varying order) then fragment the heap and the resident size creeps up by tens of MB during a
transfer. A fixed threshold keeps every buffer of ``MMAP_THRESHOLD`` bytes or more in its own mapping,
returned at once when freed; small-message batches stay below it, on the heap, as before.
"""

import ctypes
import ctypes.util
import logging
from typing import Final

log = logging.getLogger("goq.sidecar.large")

M_MMAP_THRESHOLD: Final = -3
"""``mallopt`` parameter number (glibc ``malloc.h``)."""
MMAP_THRESHOLD: Final = 512 * 1024


def keep_large_buffers_off_the_heap() -> bool:
    """Fix glibc's mmap threshold at ``MMAP_THRESHOLD``; False (and nothing changed) without glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): its allocator is left alone
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    if not ok:
        log.debug("mallopt(M_MMAP_THRESHOLD) refused; large buffers may stay on the heap")
    return ok
