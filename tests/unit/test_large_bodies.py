"""The spill area for transient large bodies: chunk-wise writes that resume, reads from any chunk, a bound."""

from pathlib import Path

import pytest

from goq.identity import Address
from goq.messages import LargeRef, MalformedMessageError, Message
from goq.sidecar.domain.errors import QueueFullError
from goq.sidecar.large.bodies import SpillBodies
from goq.sidecar.ports.stores import StoreUnavailableError


async def read_all(store: SpillBodies, name: str, offset: int = 0) -> bytes:
    return b"".join([data async for data in store.read(name, offset, 4)])


async def test_a_body_written_in_chunks_reads_back_from_any_chunk(tmp_path: Path) -> None:
    store = SpillBodies(tmp_path / "spill", 100)
    await store.open()
    writer = await store.writer("me|in|a", 4, resume=True)
    for chunk in (b"0123", b"4567", b"89"):
        await writer.write(chunk)
    await writer.finish()
    assert await store.held("me|in|a")
    assert await read_all(store, "me|in|a") == b"0123456789"
    assert await read_all(store, "me|in|a", 4) == b"456789"
    assert [name for name, _ in await store.complete("me", "in")] == ["me|in|a"]


async def test_a_resumed_writer_starts_after_the_whole_chunks_held(tmp_path: Path) -> None:
    store = SpillBodies(tmp_path / "spill", 100)
    await store.open()
    first = await store.writer("me|in|b", 4, resume=True)
    await first.write(b"0123")
    await first.write(b"45")  # a torn last chunk: dropped on resume
    again = await store.writer("me|in|b", 4, resume=True)
    assert again.offset == 4
    assert store.used == 4
    assert not await store.held("me|in|b")
    fresh = await store.writer("me|in|b", 4, resume=False)
    assert (fresh.offset, store.used) == (0, 0)


async def test_the_spill_area_refuses_bytes_beyond_its_bound_and_frees_them_on_delete(tmp_path: Path) -> None:
    store = SpillBodies(tmp_path / "spill", 6)
    await store.open()
    writer = await store.writer("me|out|c", 4, resume=False)
    await writer.write(b"0123")
    with pytest.raises(QueueFullError, match="spill area for transient large messages is full"):
        await writer.write(b"4567")
    await writer.discard()
    assert store.used == 0
    assert not any((tmp_path / "spill").iterdir())


def test_a_large_envelope_round_trips_and_carries_no_inline_payload() -> None:
    large = LargeRef(size=5 * 2**30, mac=b"m" * 32, key_id="k1", chunk_size=2**20)
    message = Message("x", Address("a", "d"), Address("b", "d"), 1, b"", large=large)
    assert Message.decode(message.encode()).large == large
    with pytest.raises(MalformedMessageError, match="no inline payload"):
        Message.decode(Message("x", Address("a", "d"), Address("b", "d"), 1, b"p", large=large).encode())


async def test_a_spill_directory_that_cannot_be_made_refuses_transient_bodies_instead_of_stopping_the_sidecar(
    tmp_path: Path,
) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = SpillBodies(tmp_path / "file" / "spill", 100)
    await store.open()
    with pytest.raises(StoreUnavailableError, match="set GOQ_SPILL_DIR to a writable directory"):
        await store.writer("me|out|d", 4, resume=False)
