"""A live display in the cell that started the jobs, updated in the background.

Each job owns two displays, created in the cell (`display(..., display_id=True)`), so every
update lands in that cell whatever runs later: front ends apply `update_display_data` by
display id (docs/facts.md "Notebook plumbing"). The first will hold the result's preview as
an `image/jpeg` output, which travels into Markdown, LaTeX and GitHub where HTML with a data
URI does not; the second holds the status line, then the caption. Updates run on the UI
thread (ui.py), about once a second and at once when a job ends.
"""

from __future__ import annotations

import threading

from . import display as render
from . import ui
from .config import Settings
from .events import Finished
from .jobs import Job, session
from .records import expected_latency


class LiveView:
    def __init__(self, jobs: list[Job], settings: Settings):
        from IPython.display import display

        self.jobs = jobs
        self.settings = settings
        self._final: dict[str, tuple] = {}  # job id -> (image output or None, caption bundle)
        self._shown: set[str] = set()  # jobs whose final state was sent
        self._lock = threading.Lock()
        self._store = session().store(settings)
        self._expect: dict[str, tuple[float, float]] = {}  # by size: jobs fall back
        self.handles = []
        for job in jobs:
            image = display(render.empty_output(), raw=True, display_id=True)
            text = display(self.status_bundle(job), raw=True, display_id=True)
            self.handles.append((image, text))
        self.ticker = ui.Ticker(session().loop, self.refresh)
        for job in jobs:
            job.add_listener(self._on_event)

    def _on_event(self, job: Job, event) -> None:
        """On the engine's loop: only a wake-up; the drawing happens on the UI thread."""
        if isinstance(event, Finished):
            self.ticker.wake()

    def status_bundle(self, job: Job) -> dict[str, str]:
        expect = self.expected(job.resolution)
        simulated = self.settings.provider == "sim"
        return {"text/html": render.status_html(job, expect, self.settings.time_scale, simulated),
                "text/plain": render.status_plain(job, expect, self.settings.time_scale,
                                                  simulated)}

    def expected(self, resolution: str) -> tuple[float, float]:
        """P50-P95 for the size under way now (after a fallback, the smaller one's)."""
        if resolution not in self._expect:
            self._expect[resolution] = expected_latency(self._store, self.settings.model,
                                                        resolution)
        return self._expect[resolution]

    def refresh(self, resend: bool = False) -> bool:
        """Send what changed (every display with `resend`) and say whether all jobs are done.

        Runs on the UI thread (previews take tens of ms), or on the kernel's thread for a
        resend. A finished job's image is sent once, not every tick. Once every job is shown
        in its final state the rendered previews are let go: a long session would otherwise
        hold ~100 KB per image for its whole life; a resend renders them again from disk.
        """
        with self._lock:
            for job, (image, text) in zip(self.jobs, self.handles):
                if job.id in self._shown and not resend:
                    continue
                if not job.done():
                    text.update(self.status_bundle(job), raw=True)
                    continue
                if job.id not in self._final:
                    self._final[job.id] = render.result_outputs(job.result())
                picture, caption = self._final[job.id]
                if picture is not None:
                    image.update(picture[0], metadata=picture[1], raw=True)
                text.update(caption, raw=True)
                self._shown.add(job.id)
            finished = len(self._shown) == len(self.jobs)
            if finished:
                self._final.clear()
            return finished


_views: dict[str, LiveView] = {}


def show(jobs: list[Job], settings: Settings) -> LiveView:
    view = LiveView(jobs, settings)
    for job in jobs:
        _views[job.id] = view
    return view


def view_for(job_id: str) -> LiveView | None:
    return _views.get(job_id)


def resend(jobs: list[Job]) -> None:
    """Send the final state of these jobs' displays again, from the calling thread.

    Headless runners (nbclient) only apply an update to an earlier cell's display while a
    later cell runs and the message names that later cell as parent: this is that update.
    """
    for view in {id(v): v for v in (view_for(j.id) for j in jobs) if v}.values():
        view.refresh(resend=True)
