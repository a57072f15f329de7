"""The one thread that changes what the user sees: widgets, live displays, their previews.

traitlets are not thread-safe, and the engine's loop times every HTTP attempt, so neither
a click (the kernel's thread) nor a job event (the loop's thread) changes a widget or reads
the ledger itself: each hands a function to this thread, which runs them one at a time in
the order given. This is ipywidgets' guidance for asynchronous widgets ("Updating a widget
in the background": a thread of its own updates the widget while the kernel takes other
requests), with one thread for all of them, so two updates can never interleave.

The ticker is the one place that wakes displays about once a second: it waits on the
engine's loop (a sleep there costs nothing) and does the work here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

TICK_S = 1.0  # never more than one update a second, as the status line promises
THREAD_NAME = "nbp-ui"
log = logging.getLogger("nbp_jupyter")
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)


def call(fn: Callable, *args) -> Future:
    """Run fn(*args) on the UI thread, after what was handed over before; errors are logged
    (a broken display must not break a job) and re-raised from the future."""
    def logged():
        try:
            return fn(*args)
        except Exception:
            log.exception("display update %s failed", getattr(fn, "__qualname__", fn))
            raise
    return _executor.submit(logged)


def flush(timeout: float | None = 30) -> None:
    """Wait until everything handed over so far has run (tests, and blocking magics)."""
    call(lambda: None).result(timeout)


class Ticker:
    """Calls `step` on the UI thread about once a second, and at once after `wake()`, until
    it returns True. Started and run on the engine's loop, which only waits here."""

    def __init__(self, loop: asyncio.AbstractEventLoop, step: Callable[[], bool]):
        self._loop = loop
        self._step = step
        self._wake: asyncio.Event | None = None
        self.done = asyncio.run_coroutine_threadsafe(self._run(), loop)

    def wake(self) -> None:
        """Any thread: run the step now rather than at the next tick."""
        self._loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            try:
                if await asyncio.wrap_future(call(self._step)):
                    return
            except Exception:  # logged by call(); a display that cannot draw stops ticking
                return
            try:
                await asyncio.wait_for(self._wake.wait(), TICK_S)
            except asyncio.TimeoutError:
                pass
