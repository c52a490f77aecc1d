"""A send stream's budget: a producer faster than the store waits instead of filling the sidecar's memory."""

import asyncio

from goq.sidecar.app_service import Budget


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
