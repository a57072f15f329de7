"""HTML for the status line, results and tables. Pure: no IPython, no network.

Everything shown is escaped; state is carried by a colour (tqdm's habit: info blue,
warning amber, success green, danger red).
"""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

from .grounding import grounding_html, grounding_text
from .jobs import Job
from .preview import PREVIEW_LONG_SIDE, preview
from .timefmt import clock, short
from .types import GenerationResult

COLOURS = {"queued": "#6b7280", "running": "#2563eb", "retrying": "#d97706",
           "fell_back": "#d97706", "hedging": "#7c3aed", "done": "#16a34a",
           "failed": "#dc2626", "cancelled": "#6b7280"}


# Front ends typeset $...$ in HTML outputs as LaTeX, so "$0.134 · + up to $0.240" became a
# formula; MathJax skips elements with these classes (v2 and v3 names).
NO_MATH = "tex2jax_ignore mathjax_ignore"


def counted(n: int, noun: str) -> str:
    """'1 image', '2 images': the totals of the history and the panel say it alike."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def state_word(status: str) -> str:
    """A job status as people read it: 'fell back', not 'fell_back'."""
    return status.replace("_", " ")


BOX = ("font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; "
       "padding: 4px 8px; border-left: 4px solid {colour}; margin: 2px 0;")
PREVIEW_CSS_SHRINK = 2  # a 1024 px preview shows at 512 CSS px: sharp on HiDPI, fits a column


def clock_label(simulated: bool, scale: float) -> str:
    """What the times are counted in: every time we show is service time (the captions'
    clock), which the simulator and NBP_TIME_SCALE run faster than the wall clock."""
    if simulated:
        return "simulated time"
    return "" if scale == 1 else f"service time ({1 / scale:.3g}× the wall clock)"


def status_text(job: Job, expect: tuple[float, float] | None, scale: float,
                simulated: bool = False) -> str:
    """The live line: size, attempt k of n, elapsed, what to expect, time left, how to cancel.

    One clock, labelled: elapsed, 'usually' and 'gives up in' are all service seconds, the
    clock of the captions, the panel and the history.
    """
    parts = [f"{job.resolution}", f"attempt {job.attempt or 1}" + _tries(job),
             f"{clock(service_elapsed(job))} elapsed"]
    if job.status == "queued":
        words = _queued_words(job)
        parts = [f"{job.resolution}", "" if words == "starting" else words,
                 f"{clock(service_elapsed(job))}"]
    if expect:
        parts.append(f"usually {clock(expect[0])}–{clock(expect[1])}")
    if job.timeout_s and job.attempt_started and not job.done():
        left = job.timeout_s - (time.monotonic() - job.attempt_started) / scale
        parts.append(f"gives up this attempt in {clock(left)}")
    parts.append(clock_label(simulated, scale))
    if job.status in ("retrying", "fell_back", "hedging") and job.events:
        parts.append(_last_reason(job))
    if not job.done():
        parts.append(f"%nbp_cancel {job.id}")
    return " · ".join(p for p in parts if p)


def _tries(job: Job) -> str:
    """' (try k of n at this size)'; a try the policy grants beyond the usual n (after quick
    failures) has no 'of n', which would read 'try 4 of 3'."""
    k, n = job.tries_on_rung, job.max_on_rung
    if k > n:
        return f" (try {k} at this size)"
    return f" (try {k} of {n} at this size)" if n > 1 else ""


def service_elapsed(job: Job) -> float:
    """Seconds on the captions' clock (service time: the simulator's runs fast): the result's
    own figure once the job ended, so %nbp_jobs, the panel and the caption agree."""
    if job.done():
        return job.result().elapsed_s
    return job.elapsed_s / job._settings.time_scale


def _queued_words(job: Job) -> str:
    """'queued behind N jobs' only when the concurrency limit is really full; a job that is
    just being started says so (the old words flashed for every job)."""
    from .jobs import session

    limit = job._settings.max_concurrency
    started = [j for j in session().running() if j.status != "queued"]
    return f"queued behind {len(started)} running jobs" if len(started) >= limit else "starting"


def job_word(job: Job) -> str:
    """The state word at the front of a job's line: 'starting' for a job that is not really
    waiting for a slot."""
    if job.status == "queued" and _queued_words(job) == "starting":
        return "starting"
    return state_word(job.status)


def _last_reason(job: Job) -> str:
    from .events import AttemptFailed, FellBack
    for event in reversed(job.events):
        if isinstance(event, FellBack):
            if event.hedge:
                return f"{event.from_label} is slow: {event.to_label} is trying beside it"
            return f"fell back {event.from_label} → {event.to_label}"
        if isinstance(event, AttemptFailed):
            after = " after the gateway's own retries" if event.gateway_retried else ""
            return f"last: {event.attempt.outcome}{after}"
    return ""


def status_plain(job: Job, expect, scale: float, simulated: bool) -> str:
    """The status line for text front ends, with the same state word as the HTML (it said
    '[queued]' where the HTML said 'starting')."""
    return f"[{job_word(job)}] " + status_text(job, expect, scale, simulated)


def status_html(job: Job, expect, scale: float, simulated: bool) -> str:
    colour = COLOURS.get(job.status, "#6b7280")
    text = status_text(job, expect, scale, simulated)
    tag = " · SIMULATED" if simulated else ""
    prompt = short(job.request.prompt, 60)
    return (f'<div class="nbp-status {NO_MATH}" data-job="{job.id}" data-state="{job.status}" '
            f'style="{BOX.format(colour=colour)}"><b style="color:{colour}">'
            f'{html.escape(job_word(job))}</b> <span class="nbp-status-text">'
            f'{html.escape(text + tag)}</span><br><span style="color:#6b7280">'
            f'{html.escape(prompt)}</span></div>')


def result_html(result: GenerationResult) -> str:
    """The caption under a result's image (the image is an output of its own: image_output)."""
    colour = COLOURS["done" if result.success else "failed"]
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
    extras = said_html(result.text) + (grounding_html(result.grounding)
                                       if result.grounding else "")
    return (f'<div class="nbp-result {NO_MATH}" data-job="{html.escape(result.job_id)}" '
            f'style="{BOX.format(colour=colour)}"><span>{caption}</span>{attempts}{extras}</div>')


SAID_OPEN_CHARS = 200  # longer words from the model are folded away under a summary


def said_html(text: str) -> str:
    """The model's words with the image, escaped; folded in a <details> when long."""
    text = text.strip()
    if not text:
        return ""
    body = f'<div class="nbp-said" style="white-space:pre-wrap">{html.escape(text)}</div>'
    if len(text) <= SAID_OPEN_CHARS:
        return body
    return (f"<details><summary>the model said: {html.escape(short(text, 80))}</summary>"
            f"{body}</details>")


def result_text(result: GenerationResult) -> str:
    """A result's text/plain: the caption, the model's words and the search's sources."""
    lines = [result.caption()]
    if result.text.strip():
        lines.append(result.text.strip())
    if result.grounding:
        lines.append(grounding_text(result.grounding))
    return "\n".join(line for line in lines if line)


def image_output(path: str | Path | None, alt: str,
                 long_side: int = PREVIEW_LONG_SIDE) -> tuple[dict, dict] | None:
    """(data, metadata) of an `image/jpeg` output with its display width: a real image output
    travels where HTML with a data URI does not (nbconvert to Markdown or LaTeX, Jupyter Book,
    GitHub). None when the file is gone or unreadable. Reads the file: not for the engine's loop."""
    if not path or not Path(path).is_file():
        return None
    try:
        jpeg, width, height = preview(Path(path), long_side)
    except OSError:
        return None
    data = {"image/jpeg": base64.b64encode(jpeg).decode("ascii"), "text/plain": alt}
    shrink = PREVIEW_CSS_SHRINK if long_side >= PREVIEW_LONG_SIDE else 1
    return data, {"image/jpeg": {"width": width // shrink, "height": height // shrink}}


def result_outputs(result: GenerationResult) -> tuple[tuple[dict, dict] | None, dict[str, str]]:
    """A finished job as two outputs: (its image output or None, its caption bundle)."""
    return (image_output(result.image_path, _alt(result)),
            {"text/html": result_html(result), "text/plain": result_text(result)})


def result_mimebundle(result: GenerationResult) -> tuple[dict, dict]:
    """A result as ONE output (its repr): the image with the caption as its text. Front ends
    show the richest type of a bundle, and HTML outranks images in JupyterLab and nbconvert,
    so a caption in HTML here would hide the image; the magics emit two outputs instead."""
    picture, caption = result_outputs(result)
    if picture is None:
        return caption, {}
    data, metadata = picture
    if result.grounding:  # Google's terms: a grounded image is never shown without its search
        size = metadata["image/jpeg"]
        img = (f'<img src="data:image/jpeg;base64,{data["image/jpeg"]}" '
               f'width="{size["width"]}" height="{size["height"]}" '
               f'alt="{html.escape(_alt(result))}">')
        return {**data, "text/html": img + caption["text/html"],
                "text/plain": caption["text/plain"]}, metadata
    return {**data, "text/plain": result.caption()}, metadata


def _alt(result: GenerationResult) -> str:
    """An image output's text/plain: what a text-only front end shows instead of it."""
    return f"[image {result.resolution}: {short(result.prompt, 80)}]"


def empty_output() -> dict:
    """A display that shows nothing yet (the place a result's image will appear)."""
    return {"text/html": "", "text/plain": ""}


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
    try:
        data = base64.b64encode(preview(Path(path), side)[0]).decode("ascii")
    except OSError:
        return ""
    return f'<img src="data:image/jpeg;base64,{data}" style="max-height:{side}px">'
