"""The Job handle's promises across threads: one Finished per listener, wait(), a clock
that stops, and listener failures that are logged rather than lost."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from nbp_jupyter.config import resolve
from nbp_jupyter.events import Finished
from nbp_jupyter.jobs import Job
from nbp_jupyter.types import Request


@dataclass
class _SlowResult:
    """Stands in for a GenerationResult; reading `.success` opens a window inside the
    loop thread's handling of Finished, where the main thread adds a listener."""

    entered: threading.Event
    resume: threading.Event

    @property
    def success(self) -> bool:
        self.entered.set()
        self.resume.wait(2)  # the fixed code reads this under its lock: do not deadlock
        return True


def _job(home) -> Job:
    return Job("001abc", Request(prompt="a fox"), resolve(provider="sim"))


def test_a_listener_added_while_the_job_finishes_hears_finished_once(home):
    """The panel would show the same image twice in its gallery."""
    job = _job(home)
    entered, resume = threading.Event(), threading.Event()
    heard: list[str] = []
    loop_thread = threading.Thread(
        target=job._on_event, args=(Finished(job.id, _SlowResult(entered, resume)),))
    loop_thread.start()
    assert entered.wait(5)
    adder = threading.Thread(
        target=job.add_listener, args=(lambda j, e: heard.append(type(e).__name__),))
    adder.start()
    time.sleep(0.05)  # let add_listener reach the job's state before the loop goes on
    resume.set()
    loop_thread.join(5)
    adder.join(5)
    assert heard == ["Finished"]


def test_wait_returns_false_then_true_and_elapsed_stops_at_the_end(home):
    """%nbp_jobs would keep counting a finished job's time, and waits would hang."""
    job = _job(home)
    assert job.wait(0.01) is False and not job.done()
    job._on_event(Finished(job.id, _FakeResult()))
    assert job.wait(0) is True and job.done()
    stopped = job.elapsed_s
    time.sleep(0.02)
    assert job.elapsed_s == stopped


def test_a_failing_listener_is_logged_and_the_others_still_run(home, caplog):
    """A broken display would silently swallow the job's end."""
    job = _job(home)
    heard = []

    def broken(j, e):
        raise RuntimeError("display exploded")

    job.add_listener(broken)
    job.add_listener(lambda j, e: heard.append(e))
    with caplog.at_level(logging.ERROR, logger="nbp_jupyter"):
        job._on_event(Finished(job.id, _FakeResult()))
    assert len(heard) == 1 and job.done()
    assert any("display exploded" in r.getMessage() or "display exploded" in (r.exc_text or "")
               or (r.exc_info and "display exploded" in str(r.exc_info[1]))
               for r in caplog.records)


class _FakeResult:
    success = True
