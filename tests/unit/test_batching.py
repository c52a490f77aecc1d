"""Group commit: concurrent submissions share one write, each caller gets its own results, none is stranded."""

import asyncio

import pytest

from goq.sidecar.domain.batching import GroupCommitter


class Recorder:
    """A store stand-in that records each write's items and answers with doubled values."""

    def __init__(self, delay: float = 0.0) -> None:
        self.writes: list[list[int]] = []
        self.delay = delay

    async def write(self, items: list[int]) -> list[int]:
        self.writes.append(list(items))
        await asyncio.sleep(self.delay)
        return [i * 2 for i in items]


async def test_submissions_made_while_a_write_runs_share_the_next_write() -> None:
    store = Recorder(delay=0.01)
    committer = GroupCommitter(store.write)
    first = asyncio.ensure_future(committer.submit([0, 100]))
    await asyncio.sleep(0.001)  # the first write is under way
    rest = await asyncio.gather(*(committer.submit([n, n + 100]) for n in range(1, 5)))
    results = [await first, *rest]
    assert results == [[n * 2, (n + 100) * 2] for n in range(5)]
    assert store.writes[0] == [0, 100]
    assert len(store.writes) == 2, "the four submissions made during the first write were not grouped"


async def test_a_submission_right_after_a_write_finishes_is_written() -> None:
    committer = GroupCommitter(Recorder().write)
    assert await committer.submit([1]) == [2]
    # The caller resumes before the finished writer is forgotten: this must still start a write.
    assert await asyncio.wait_for(committer.submit([2]), 1.0) == [4]


async def test_a_group_never_exceeds_max_batch_but_a_large_submission_goes_whole() -> None:
    store = Recorder(delay=0.01)
    committer = GroupCommitter(store.write, max_batch=3)
    await asyncio.gather(
        committer.submit([1]), committer.submit([2, 3]), committer.submit([4, 5]), committer.submit(list(range(10, 15)))
    )
    assert [len(w) for w in store.writes] == [3, 2, 5]


async def test_a_failed_write_fails_every_caller_in_its_group_and_the_next_group_still_runs() -> None:
    calls = 0

    async def flaky(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 2:
            raise RuntimeError("disk on fire")
        return items

    committer = GroupCommitter(flaky)
    first = asyncio.ensure_future(committer.submit([1]))
    await asyncio.sleep(0)
    grouped = [asyncio.ensure_future(committer.submit([n])) for n in (2, 3)]
    assert await first == [1]
    for future in grouped:
        with pytest.raises(RuntimeError, match="disk on fire"):
            await future
    assert await committer.submit([4]) == [4]


async def test_background_submissions_are_written_and_drain_waits_for_them() -> None:
    store = Recorder(delay=0.01)
    committer = GroupCommitter(store.write)
    committer.submit_nowait([1, 2])
    committer.submit_nowait([3])
    await committer.drain()
    assert committer.idle
    assert sorted(i for w in store.writes for i in w) == [1, 2, 3]


async def test_a_caller_resubmitting_as_soon_as_its_write_failed_is_written() -> None:
    calls = 0

    async def fails_first(items: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database down")
        return items

    committer = GroupCommitter(fails_first)
    with pytest.raises(RuntimeError):
        await committer.submit([1])
    # Resumed by the failure before the finished writer was forgotten: this must still be written.
    assert await asyncio.wait_for(committer.submit([2]), 1.0) == [2]


async def test_with_two_writers_a_second_write_overlaps_the_first_and_results_keep_submission_order() -> None:
    delays = iter([0.05, 0.0])  # the first write answers last
    running, overlapped = 0, False
    released: list[int] = []

    async def write(items: list[int]) -> list[int]:
        nonlocal running, overlapped
        running += 1
        overlapped = overlapped or running > 1
        await asyncio.sleep(next(delays))
        running -= 1
        return items

    committer: GroupCommitter[int, int] = GroupCommitter(write, concurrency=2)

    async def submit(value: int) -> None:
        await committer.submit([value])
        released.append(value)

    first = asyncio.create_task(submit(1))
    await asyncio.sleep(0)
    second = asyncio.create_task(submit(2))
    await asyncio.gather(first, second)
    assert overlapped
    assert released == [1, 2]
