"""The background loop and Job handles.

One asyncio loop runs in a daemon thread for the whole process (a kernel), so submitting
never blocks and nothing depends on the kernel's own loop, which freezes while a cell
blocks (docs/facts.md "Notebook plumbing"). Blocking calls wait on a threading.Event; async
callers await a future bound to their own loop.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable

from .config import Settings
from .local_sim import LocalSimulators
from .engine import Engine, Plan
from .errors import NbpError
from .events import AttemptFailed, AttemptStarted, Event, FellBack, Finished, Waiting
from .policy import RetryPolicy
from .slots import Slots
from .store import Store
from .states import JobStatus
from .types import GenerationResult, Request
from .timefmt import clock

log = logging.getLogger("nbp_jupyter")

class Job:
    """A handle on one generation running in the background.

    `status` is one of queued, running, retrying, fell_back, hedging (a second call runs
    beside a slow one), done, failed, cancelled.
    """

    def __init__(self, job_id: str, request: Request, settings: Settings):
        self.id = job_id
        self.request = request
        self.status: JobStatus = "queued"
        self.attempt = 0  # number of the attempt under way or last made
        self.resolution = request.size
        self.timeout_s: float | None = None
        self.attempt_started: float | None = None  # time.monotonic() of the current attempt
        self.submitted = time.monotonic()
        self.events: list[Event] = []
        self.max_on_rung = 1
        self.tries_on_rung = 0
        self._settings = settings
        self.ended: float | None = None  # time.monotonic() when Finished arrived
        self._result: GenerationResult | None = None
        # Set after every listener has heard Finished, so wait()/done() never run ahead
        # of the display; a Future also lets async callers wrap it.
        self._future: concurrent.futures.Future[GenerationResult] = concurrent.futures.Future()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancel_requested = False
        self._listeners: list[Callable[[Job, Event], None]] = []
        self._lock = threading.Lock()

    # ----- what users call -------------------------------------------------------------
    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends or `timeout` seconds pass; True if it ended.
        Interrupt (Ctrl-C) stops the waiting, not the job."""
        try:
            self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            return False
        return True

    def result(self, timeout: float | None = None) -> GenerationResult:
        """Wait for the result (Ctrl-C / Interrupt stops waiting, not the job)."""
        if not self.wait(timeout):
            raise TimeoutError(f"job {self.id} is still {self.status} after {timeout} s; "
                               "call result() again or cancel() it")
        return self._future.result()

    def cancel(self) -> bool:
        """Stop the job; an attempt on the wire is aborted and recorded as billed=unknown
        (billed=no if its request had not started to go out)."""
        if self.done():
            return False
        self._cancel_requested = True
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        return True

    @property
    def elapsed_s(self) -> float:
        """Wall-clock seconds since submit; it stops when the job ends."""
        return (self.ended if self.ended is not None else time.monotonic()) - self.submitted

    def add_listener(self, fn: Callable[[Job, Event], None]) -> None:
        """Call fn(job, event) on the background thread for each later event, and exactly
        once with Finished: here at once if the job already finished, else from the loop."""
        with self._lock:  # the same lock that publishes the result: no window between them
            finished = self._result
            if finished is None:
                self._listeners.append(fn)
        if finished is not None:
            self._call(fn, Finished(self.id, finished))

    def refine(self, prompt: str, **options) -> Job:
        """A new Job that continues this one's conversation with `prompt`, e.g. "make the
        sky darker"; takes the options of `submit` (see `nbp_jupyter.refine`)."""
        from .api import refine  # the api layer builds requests; a Job only hands over
        return refine(self, prompt, **options)

    @property
    def home(self):
        """The folder of this job's images and ledger."""
        return self._settings.home

    def __repr__(self) -> str:
        return (f"<Job {self.id} {self.request.size} {self.status} attempt {self.attempt} "
                f"{clock(self.elapsed_s)}>")

    # ----- fed by the engine (background thread) ---------------------------------------
    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, AttemptStarted):
            self.attempt, self.resolution = event.number, event.resolution
            self.timeout_s, self.attempt_started = event.timeout_s, time.monotonic()
            self.tries_on_rung, self.max_on_rung = event.tries_on_rung, event.max_on_rung
            if event.number == 1:  # later attempts keep "retrying" / "fell_back"
                self.status = "running"
        elif isinstance(event, (AttemptFailed, Waiting)):
            self.status = "retrying"
        elif isinstance(event, FellBack):
            self.status = "hedging" if event.hedge else "fell_back"
        with self._lock:
            if isinstance(event, Finished):
                # Result and listener snapshot under one lock: a listener added now is
                # either in this snapshot or sees the result in add_listener, never both.
                self.ended = time.monotonic()
                self._result = event.result
                self.status = ("done" if event.result.success else
                               "cancelled" if self._cancel_requested else "failed")
            listeners = list(self._listeners)
        for fn in listeners:
            self._call(fn, event)
        if isinstance(event, Finished):
            self._future.set_result(event.result)

    def _call(self, fn: Callable[[Job, Event], None], event: Event) -> None:
        try:
            fn(self, event)
        except Exception:  # a broken display must not break the job, but it is a bug
            log.exception("listener %r of job %s failed on %s", fn, self.id,
                          type(event).__name__)


class Session:
    """Per-process state: the loop thread, the engine, stores and on-demand simulators."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stores: dict[str, Store] = {}
        self.simulators = LocalSimulators()
        self._semaphores: dict[int, Slots] = {}
        self.engine = Engine(self.store)
        self.jobs: dict[str, Job] = {}
        self.id = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever,
                                                name="nbp-jobs", daemon=True)
                self._thread.start()
            return self._loop

    def store(self, settings: Settings) -> Store:
        key = str(settings.home.resolve())
        with self._lock:
            if key not in self._stores:
                self._stores[key] = Store(settings.home, session=self.id)
            return self._stores[key]

    def sim_url(self, settings: Settings) -> str:
        """The URL of a simulator for these settings (the keyless default)."""
        return self.simulators.url(settings)

    def submit(self, request: Request, settings: Settings, policy: RetryPolicy,
               listener: Callable[[Job, Event], None] | None = None) -> Job:
        base_url = settings.base_url or self.sim_url(settings)
        store = self.store(settings)  # create the ledger now: errors surface in the caller's cell
        job_id = self._new_id(store)
        job = Job(job_id, request, settings)
        if listener is not None:
            job.add_listener(listener)
        self.jobs[job_id] = job
        plan = Plan(job_id=job_id, request=request, settings=settings, base_url=base_url,
                    policy=policy, rng=random.Random(),
                    alternate_urls={s.provider: s.base_url or self.sim_url(s)
                                    for s in settings.alternates})
        job._loop = self.loop
        asyncio.run_coroutine_threadsafe(self._run(job, plan), job._loop)
        return job

    def _new_id(self, store: Store) -> str:
        """Short enough to type in %nbp_cancel; unique in the ledger, which outlives sessions
        that each count from 1 (3 random hex digits alone collide after ~75 sessions)."""
        while True:
            job_id = f"{next(self._ids):03d}{uuid.uuid4().hex[:3]}"
            if job_id not in self.jobs and store.job(job_id) is None:
                return job_id

    async def _run(self, job: Job, plan: Plan) -> None:
        job._task = task = asyncio.current_task()
        if job._cancel_requested and task is not None:  # cancelled before the loop got to it
            task.cancel()
        limit = plan.settings.max_concurrency
        semaphore = self._semaphores.setdefault(limit, Slots(limit))
        plan.slots = semaphore  # a hedge takes a second slot
        try:
            async with semaphore:
                await self.engine.run(plan, job._on_event)
        except asyncio.CancelledError:
            if not job.done():  # cancelled while queued: nothing was sent
                job._on_event(Finished(job.id, _cancelled_before_start(plan)))
        except BaseException as exc:  # a bug must still end the job, with a message
            if not job.done():
                job._on_event(Finished(job.id, _crashed(plan, exc)))

    async def _close_loop(self) -> None:
        """End tickers and other background tasks, then close the HTTP clients."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.engine.aclose()

    def running(self) -> list[Job]:
        return [job for job in self.jobs.values() if not job.done()]

    def cancel(self, jobs: list[Job]) -> list[str]:
        """Cancel several jobs; returns the ids that were still running. Queued ones go
        first: cancelling a job on the wire frees its slot, and a queued job that took it
        would send a request (and maybe be billed) only to be cancelled a moment later."""
        ordered = sorted(jobs, key=lambda job: job.status != "queued")
        return [job.id for job in ordered if job.cancel()]

    def shutdown(self) -> None:
        """Cancel everything, close sockets, stop simulators (tests and unload)."""
        self.cancel(self.running())
        for job in list(self.jobs.values()):
            job.wait(5)
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._close_loop(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            self._loop.close()
        self.simulators.stop()
        for store in self._stores.values():
            store.close()


def _empty_result(plan: Plan, error: str) -> GenerationResult:
    return GenerationResult(
        success=False, requested=plan.request.size, resolution=None, downgraded=False,
        width=None, height=None, image_path=None, model=plan.settings.model, attempts=[],
        elapsed_s=0.0, cost_usd=0.0, cost_unknown_usd=0.0, error=error,
        simulated=plan.settings.provider == "sim", prompt=plan.request.prompt, job_id=plan.job_id,
        turn=plan.request.turn, refines=plan.request.parent)


def _cancelled_before_start(plan: Plan) -> GenerationResult:
    return _empty_result(plan, "cancelled before any request was sent (nothing billed)")


def _crashed(plan: Plan, exc: BaseException) -> GenerationResult:
    text = exc.one_line() if isinstance(exc, NbpError) else f"{type(exc).__name__}: {exc}"
    return _empty_result(plan, f"internal error: {text}")


_session: Session | None = None
_session_lock = threading.Lock()


def session() -> Session:
    """The one per-process session, created on first use."""
    global _session
    with _session_lock:
        if _session is None:
            _session = Session()
        return _session


def reset_session() -> None:
    """Shut the session down and forget it (tests; %unload_ext)."""
    global _session
    with _session_lock:
        current, _session = _session, None
    if current is not None:
        current.shutdown()


# The session owns its ledgers: close them (and end its session lock) at exit rather than
# leaving connections to the garbage collector. A no-op when no session was made.
atexit.register(reset_session)
