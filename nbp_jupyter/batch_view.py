"""A batch's live status line in the cell that started (or asked about) it, ending in a
contact sheet of previews with captions.

Like live.py: the display handle is made in the cell, the background loop only calls
`handle.update()`, at most once a second; previews are rendered in a worker thread.
"""

from __future__ import annotations

import html
import time

from . import display as render
from . import ui
from .batch_store import FINAL_STATES
from .batching import BatchJob
from .jobs import session
from .timefmt import clock, short

SHEET_LIMIT = 48  # previews in the contact sheet; the rest are on disk and in results()
THUMB_SIDE = 192
COLOURS = {"creating": "#6b7280", "pending": "#6b7280", "running": "#2563eb",
           "collecting": "#7c3aed", "done": "#16a34a", "failed": "#dc2626",
           "cancelled": "#6b7280", "expired": "#dc2626"}


def status_text(job: BatchJob, now: float | None = None) -> str:
    """State, done/failed of total, elapsed, next poll: one line a person can read."""
    now = time.time() if now is None else now
    done, failed, total = job.counts
    parts = [job.state, f"{done} done, {failed} failed of {total}"]
    if job.state in ("pending", "running", "creating") and job.remote_done:
        parts[1] = f"{job.remote_done} of {total} finished at the service"
    # on the service's clock, as every line's caption is (the simulator's runs fast)
    scale = job.settings.time_scale
    end = job.finished if job.finished is not None and job.state in FINAL_STATES else now
    parts.append(f"{clock((end - job.created) / scale)} elapsed")
    if job.next_poll is not None and job.state not in FINAL_STATES:
        left = max(0.0, job.next_poll - time.monotonic()) / scale
        parts.append(f"next poll in {clock(left)}")
    if job.cost_usd:
        parts.append(f"${job.cost_usd:.3f} at the batch price")
    if job.error:
        parts.append(job.error)
    parts.append(render.clock_label(job.simulated, scale))
    if job.simulated:
        parts.append("SIMULATED")
    return " · ".join(p for p in parts if p)


def status_html(job: BatchJob) -> str:
    colour = COLOURS.get(job.state, "#6b7280")
    bar = f"{job.progress:.0%}"
    return (f'<div class="nbp-batch {render.NO_MATH}" data-batch="{html.escape(job.id)}" '
            f'style="{render.BOX.format(colour=colour)}"><b style="color:{colour}">'
            f'{html.escape(job.display_name)}</b> {html.escape(status_text(job))}'
            f'<div style="background:#e5e7eb;height:4px;margin-top:3px"><div style="'
            f'background:{colour};width:{bar};height:4px"></div></div></div>')


def sheet_html(job: BatchJob) -> str:
    """The final state: the status line and a grid of previews, each with its caption."""
    cells = []
    for result in job.results()[:SHEET_LIMIT]:
        thumb = render.thumbnail_html(str(result.image_path) if result.image_path else None,
                                      THUMB_SIDE)
        words = (f"{result.resolution} · ${result.cost_usd:.3f}" if result.success
                 else f"failed: {result.error or 'no image'}")
        cells.append(f'<figure style="margin:0;width:{THUMB_SIDE}px">{thumb}<figcaption '
                     f'style="font-size:11px">{html.escape(short(result.prompt, 60))}<br>'
                     f'{html.escape(words)}</figcaption></figure>')
    more = job.total - min(job.total, SHEET_LIMIT)
    tail = (f"<p>+ {more} more on disk: job.results() lists them</p>" if more > 0
            and len(cells) == SHEET_LIMIT else "")
    grid = (f'<div class="nbp-sheet {render.NO_MATH}" style="display:flex;flex-wrap:wrap;'
            f'gap:6px">{"".join(cells)}</div>') if cells else ""
    return status_html(job) + grid + tail


class BatchView:
    """One batch's display; `refresh()` sends its current state."""

    def __init__(self, job: BatchJob):
        from IPython.display import display

        self.job = job
        self.handle = display(self.bundle(final=False), raw=True, display_id=True)
        # the one ticker (ui.py): refreshes on the UI thread about once a second, and at
        # once when the batch reports news from whichever thread it runs on
        self.ticker = ui.Ticker(session().loop, self.refresh)
        job.add_listener(lambda _job: self.ticker.wake())

    def bundle(self, final: bool) -> dict[str, str]:
        body = sheet_html(self.job) if final else status_html(self.job)
        return {"text/html": body, "text/plain": f"[{self.job.display_name}] "
                                                 + status_text(self.job)}

    def refresh(self) -> bool:
        """Send the state; True once the batch has ended (and the sheet was sent)."""
        final = self.job.done()
        self.handle.update(self.bundle(final), raw=True)
        return final

def table_html(rows: list[dict]) -> str:
    """%nbp_batches: every batch in the ledger with state, counts, cost and age."""
    now = time.time()
    body = [[r["id"], short(r["display_name"], 40), r["state"],
             f"{r['done']}/{r['failed']}/{r['total']}", f"${r['cost_usd'] or 0:.3f}",
             clock(now - r["created"]) + " ago", short(r["error"] or "", 80)] for r in rows]
    return render.table_html(["batch", "name", "state", "done/failed/total", "cost", "age",
                              "note"], body)
