"""The session's concurrency limit, with a place at the front of the line for hedges.

A job holds one slot from its first attempt to its end; a hedge holds a second one while it
flies. At full load a slot is never free when a hedge is due, because every slot that
comes free goes to the next queued job at once, so a hedge that may only take a free slot
does nothing exactly when the service is struggling. Here a hedge waits for the next slot
to come free ahead of the jobs that have not started yet (their wait is not one of the
job's own seconds: it counts from its first attempt). The limit itself is never passed.
"""

from __future__ import annotations

import asyncio
import collections


class Slots:
    """Like asyncio.Semaphore(limit), but `acquire(first=True)` waiters go before others."""

    def __init__(self, limit: int):
        self._free = limit
        self._waiters: dict[bool, collections.deque[asyncio.Future]] = {
            True: collections.deque(), False: collections.deque()}

    def locked(self) -> bool:
        """True when an acquire would have to wait."""
        return self._free == 0 or self._queued(True) or self._queued(False)

    async def acquire(self, first: bool = False) -> None:
        if self._free > 0 and not self._queued(True) and (first or not self._queued(False)):
            self._free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[first].append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        for first in (True, False):
            queue = self._waiters[first]
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._free += 1

    def _queued(self, first: bool) -> bool:
        queue = self._waiters[first]
        while queue and queue[0].done():  # cancelled waiters leave their place
            queue.popleft()
        return bool(queue)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()
