"""The concurrency limit's line: hedges due go before jobs that have not started."""

from __future__ import annotations

import asyncio

from nbp_jupyter.slots import Slots


def test_a_waiting_hedge_gets_the_next_slot_before_a_waiting_job():
    """A freed slot goes to the hedge that asked later, ahead of the queued job."""
    async def scenario():
        slots, order = Slots(1), []
        await slots.acquire()

        async def wait(name, first):
            await slots.acquire(first=first)
            order.append(name)

        job = asyncio.ensure_future(wait("job", False))
        await asyncio.sleep(0)
        hedge = asyncio.ensure_future(wait("hedge", True))
        await asyncio.sleep(0)
        assert slots.locked() and order == []
        slots.release()
        await asyncio.sleep(0)
        assert order == ["hedge"]
        slots.release()
        await asyncio.gather(job, hedge)
        return order
    assert asyncio.run(scenario()) == ["hedge", "job"]


def test_a_cancelled_waiter_neither_keeps_its_place_nor_swallows_a_slot():
    """A hedge given up while waiting leaves the slot to the next in line."""
    async def scenario():
        slots = Slots(1)
        await slots.acquire()
        hedge = asyncio.ensure_future(slots.acquire(first=True))
        job = asyncio.ensure_future(slots.acquire())
        await asyncio.sleep(0)
        slots.release()  # handed to the hedge ...
        hedge.cancel()  # ... which is cancelled before it runs: the job gets the slot
        await asyncio.gather(hedge, return_exceptions=True)
        await asyncio.wait_for(job, 1.0)
        assert slots.locked()
        slots.release()
        return slots.locked()
    assert asyncio.run(scenario()) is False


def test_the_limit_is_never_passed():
    """However many ask, no more than `limit` hold a slot at once."""
    async def scenario():
        slots, holding, most = Slots(2), [0], [0]

        async def work(first):
            await slots.acquire(first=first)
            holding[0] += 1
            most[0] = max(most[0], holding[0])
            await asyncio.sleep(0)
            holding[0] -= 1
            slots.release()
        await asyncio.gather(*(work(i % 2 == 0) for i in range(10)))
        return most[0]
    assert asyncio.run(scenario()) == 2
