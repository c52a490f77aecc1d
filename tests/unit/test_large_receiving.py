"""A chunk of a large body being stored when its transfer is cancelled: it lands and is counted first."""

import asyncio

import pytest

from goq.sidecar.large.progress import LargeProgress
from goq.sidecar.large.receiving import store_chunk


class SlowWriter:
    """Appends after a pause, as an insert already sent to MongoDB lands after its caller went away."""

    def __init__(self, fail: bool = False) -> None:
        self.offset = 0
        self.fail = fail
        self.started = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.started.set()
        await asyncio.sleep(0.05)
        if self.fail:
            raise RuntimeError("store out of reach")
        self.offset += len(data)

    async def finish(self) -> None:
        pass

    async def discard(self) -> None:
        pass


async def test_a_chunk_is_stored_and_counted() -> None:
    writer, progress = SlowWriter(), LargeProgress()
    await store_chunk(writer, b"abcd", progress)
    assert (writer.offset, progress.bytes_received) == (4, 4)


async def test_a_cancelled_transfer_finishes_its_chunk_write_and_counts_it_before_letting_go() -> None:
    writer, progress = SlowWriter(), LargeProgress()
    task = asyncio.create_task(store_chunk(writer, b"abcd", progress))
    await writer.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (writer.offset, progress.bytes_received) == (4, 4)  # done by the time the cancellation arrived


async def test_a_chunk_that_fails_to_store_is_not_counted() -> None:
    writer, progress = SlowWriter(fail=True), LargeProgress()
    with pytest.raises(RuntimeError):
        await store_chunk(writer, b"abcd", progress)
    assert progress.bytes_received == 0


async def test_a_cancelled_transfer_whose_chunk_fails_counts_nothing() -> None:
    writer, progress = SlowWriter(fail=True), LargeProgress()
    task = asyncio.create_task(store_chunk(writer, b"abcd", progress))
    await writer.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert progress.bytes_received == 0
