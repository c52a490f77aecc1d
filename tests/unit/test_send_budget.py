"""A send stream's budget: a producer faster than the store waits instead of filling the sidecar's memory."""

import asyncio

from goq.sidecar.apis.app_service import Budget


async def test_a_batch_beyond_the_budget_waits_until_an_earlier_one_is_answered() -> None:
    budget = Budget(messages=10, size=1000)
    await budget.take(8, 100)
    waiting = asyncio.create_task(budget.take(5, 100))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    budget.give(8, 100)
    await asyncio.wait_for(waiting, 1)


async def test_bytes_count_as_well_as_messages() -> None:
    budget = Budget(messages=10, size=1000)
    await budget.take(1, 900)
    waiting = asyncio.create_task(budget.take(1, 200))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    budget.give(1, 900)
    await asyncio.wait_for(waiting, 1)


async def test_a_batch_larger_than_the_whole_budget_goes_through_alone() -> None:
    budget = Budget(messages=10, size=1000)
    await asyncio.wait_for(budget.take(50, 5000), 1)
    waiting = asyncio.create_task(budget.take(1, 1))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    budget.give(50, 5000)
    await asyncio.wait_for(waiting, 1)


async def test_a_give_that_frees_too_little_keeps_the_batch_waiting_for_the_next() -> None:
    budget = Budget(messages=10, size=1000)
    await budget.take(4, 100)
    await budget.take(4, 100)
    waiting = asyncio.create_task(budget.take(5, 100))
    await asyncio.sleep(0.01)
    budget.give(4, 100)  # 4 left taken: 5 more fit
    await asyncio.wait_for(waiting, 1)
    another = asyncio.create_task(budget.take(3, 100))
    await asyncio.sleep(0.01)
    budget.give(1, 0)  # 8 taken: 3 more do not fit yet
    await asyncio.sleep(0.01)
    assert not another.done()
    budget.give(4, 100)
    await asyncio.wait_for(another, 1)


async def test_answers_while_nobody_waits_start_no_tasks() -> None:
    budget = Budget(messages=10, size=1000)
    await budget.take(2, 100)
    before = len(asyncio.all_tasks())
    budget.give(1, 50)
    budget.give(1, 50)
    assert len(asyncio.all_tasks()) == before
