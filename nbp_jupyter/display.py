"""HTML for the status line, results and tables. Pure: no IPython, no network.

Everything shown is escaped; state is carried by a colour (tqdm's habit: info blue,
warning amber, success green, danger red).
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

from .jobs import Job
from .types import GenerationResult

COLOURS = {"queued": "#6b7280", "running": "#2563eb", "retrying": "#d97706",
           "fell_back": "#d97706", "hedging": "#7c3aed", "done": "#16a34a",
           "failed": "#dc2626", "cancelled": "#6b7280"}


# Front ends typeset $...$ in HTML outputs as LaTeX, so "$0.134 · + up to $0.240" became a
# formula; MathJax skips elements with these classes (v2 and v3 names).
NO_MATH = "tex2jax_ignore mathjax_ignore"


def state_word(status: str) -> str:
    """A job status as people read it: 'fell back', not 'fell_back'."""
    return status.replace("_", " ")
BOX = ("font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; "
       "padding: 4px 8px; border-left: 4px solid {colour}; margin: 2px 0;")


def clock(seconds: float) -> str:
    minutes, secs = divmod(max(0, int(seconds)), 60)
    return f"{minutes}:{secs:02d}"


def status_text(job: Job, expect: tuple[float, float] | None, scale: float) -> str:
    """The live line: size, attempt k of n, elapsed, what to expect, time left, how to cancel.

    Times are wall-clock seconds; the service's figures are multiplied by the time scale.
    """
    now = time.monotonic()
    parts = [f"{job.resolution}", f"attempt {job.attempt or 1}"
             + (f" (try {job.tries_on_rung} of {job.max_on_rung} at this size)"
                if job.max_on_rung > 1 else ""),
             f"{clock(job.elapsed_s)} elapsed"]
    if job.status == "queued":
        parts = [f"{job.resolution}", "queued behind other jobs", f"{clock(job.elapsed_s)}"]
    if expect:
        parts.append(f"usually {clock(expect[0] * scale)}–{clock(expect[1] * scale)}")
    if job.timeout_s and job.attempt_started:
        left = job.timeout_s * scale - (now - job.attempt_started)
        parts.append(f"gives up this attempt in {clock(left)}")
    if job.status in ("retrying", "fell_back", "hedging") and job.events:
        parts.append(_last_reason(job))
    parts.append(f"%nbp_cancel {job.id}")
    return " · ".join(p for p in parts if p)


def _last_reason(job: Job) -> str:
    from .events import AttemptFailed, FellBack
    for event in reversed(job.events):
        if isinstance(event, FellBack):
            if event.hedge:
                return f"{event.from_label} is slow: {event.to_label} is trying beside it"
            return f"fell back {event.from_label} → {event.to_label}"
        if isinstance(event, AttemptFailed):
            return f"last: {event.attempt.outcome}"
    return ""


def status_html(job: Job, expect, scale: float, simulated: bool) -> str:
    colour = COLOURS.get(job.status, "#6b7280")
    text = status_text(job, expect, scale)
    tag = " · SIMULATED" if simulated else ""
    prompt = short(job.request.prompt, 60)
    return (f'<div class="nbp-status {NO_MATH}" data-job="{job.id}" style="{BOX.format(colour=colour)}">'
            f'<b style="color:{colour}">{html.escape(state_word(job.status))}</b> '
            f'{html.escape(text + tag)}<br><span style="color:#6b7280">'
            f'{html.escape(prompt)}</span></div>')


def result_html(result: GenerationResult, preview: bytes | None) -> str:
    colour = COLOURS["done" if result.success else "failed"]
    img = ""
    if preview:
        data = base64.b64encode(preview).decode("ascii")
        img = (f'<img src="data:image/jpeg;base64,{data}" style="max-width:100%" '
               f'alt="{html.escape(short(result.prompt, 80))}"><br>')
    caption = html.escape(result.caption())
    attempts = ""
    if not result.success or len(result.attempts) > 1:
        rows = "".join(
            f"<li>#{a.number} {html.escape(a.resolution)} {html.escape(a.outcome)}"
            f"{' HTTP ' + str(a.http_status) if a.http_status else ''} · waited "
            f"{clock(a.waited_s)} · took {clock(a.elapsed_s)} · billed {html.escape(a.billed)}"
            f" · {html.escape(a.detail)}</li>" for a in result.attempts)
        attempts = (f"<details><summary>{len(result.attempts)} attempts</summary>"
                    f"<ul>{rows}</ul></details>")
    return (f'<div class="nbp-result {NO_MATH}" data-job="{html.escape(result.job_id)}" '
            f'style="{BOX.format(colour=colour)}">{img}'
            f'<span>{caption}</span>{attempts}</div>')


def grid_html(cells: list[str]) -> str:
    if len(cells) == 1:
        return cells[0]
    inner = "".join(f'<div style="flex: 1 1 300px; min-width: 0">{c}</div>' for c in cells)
    return f'<div class="nbp-grid {NO_MATH}" style="display:flex; flex-wrap:wrap; gap:8px">{inner}</div>'


def table_html(headers: list[str], rows: list[list[str]], raw_columns: set[int] = frozenset()) -> str:
    """A plain table; cells are escaped except the named columns (thumbnails)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td>{c if i in raw_columns else html.escape(str(c))}</td>" for i, c in enumerate(row))
        + "</tr>" for row in rows)
    return f'<table class="nbp-table {NO_MATH}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def thumbnail_html(path: str | None, side: int = 96) -> str:
    if not path or not Path(path).is_file():
        return ""
    from .preview import preview_jpeg
    try:
        data = base64.b64encode(preview_jpeg(Path(path), side)).decode("ascii")
    except OSError:
        return ""
    return f'<img src="data:image/jpeg;base64,{data}" style="max-height:{side}px">'


def short(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
