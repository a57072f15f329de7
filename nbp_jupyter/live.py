"""A live display in the cell that started the jobs, updated from the background loop.

The display handle is created in the cell (`display(..., display_id=True)`), so every
update lands in that cell whatever runs later: front ends apply `update_display_data` by
display id (FACTS.md "Notebook plumbing"). The background only calls `handle.update()`,
about once a second and once more when the last job ends.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from . import display as render
from .config import Settings
from .events import Finished
from .jobs import Job, session
from .preview import preview_jpeg
from .records import expected_latency

TICK_S = 1.0  # never more than one update a second, as the status-line promise says


class LiveView:
    def __init__(self, jobs: list[Job], settings: Settings):
        from IPython.display import display

        self.jobs = jobs
        self.settings = settings
        self._final: dict[str, str] = {}
        self._lock = threading.Lock()
        self._store = session().store(settings)
        self._expect: dict[str, tuple[float, float]] = {}  # by size: jobs fall back
        self.handle = display(self.bundle(), raw=True, display_id=True)
        self.ticker = asyncio.run_coroutine_threadsafe(self._tick(), session().loop)

    def bundle(self) -> dict[str, str]:
        cells, lines = [], []
        for job in self.jobs:
            final = self._final.get(job.id)
            if final is not None:
                cells.append(final)
                lines.append(job.result().caption())
            else:
                expect = self.expected(job.resolution)
                cells.append(render.status_html(job, expect, self.settings.time_scale,
                                                self.settings.provider == "sim"))
                lines.append(f"[{job.status}] " + render.status_text(
                    job, expect, self.settings.time_scale))
        return {"text/html": render.grid_html(cells), "text/plain": "\n".join(lines)}

    def expected(self, resolution: str) -> tuple[float, float]:
        """P50-P95 for the size under way now (after a fallback, the smaller one's)."""
        if resolution not in self._expect:
            self._expect[resolution] = expected_latency(self._store, self.settings.model,
                                                        resolution)
        return self._expect[resolution]

    def refresh(self) -> bool:
        """Render newly finished jobs, send the display, and say whether all are done.

        Runs off the kernel's thread (previews take tens of ms). Once every job is shown
        in its final state the rendered previews are let go: a long session would otherwise
        hold ~100 KB per image for its whole life; a later resend renders them again from disk.
        """
        with self._lock:
            for job in self.jobs:
                if job.done() and job.id not in self._final:
                    self._final[job.id] = self._render(job)
            if self.handle is not None:
                self.handle.update(self.bundle(), raw=True)
            finished = all(job.id in self._final for job in self.jobs)
            if finished:
                self._final.clear()
            return finished

    @staticmethod
    def _render(job: Job) -> str:
        result = job.result()
        preview = None
        if result.image_path and Path(result.image_path).is_file():
            preview = preview_jpeg(Path(result.image_path))
        return render.result_html(result, preview)

    async def _tick(self) -> None:
        wake = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_event(job: Job, event) -> None:
            if isinstance(event, Finished):
                loop.call_soon_threadsafe(wake.set)

        for job in self.jobs:
            job.add_listener(on_event)
        while not await asyncio.to_thread(self.refresh):
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), TICK_S)
            except asyncio.TimeoutError:
                pass


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
        view.refresh()
