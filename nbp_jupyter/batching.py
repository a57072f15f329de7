"""Hundreds of images at half price: a Gemini Batch API job, created, watched and collected in
the background, each result line recorded in the ledger as a job at the batch price.

    job = nbp_jupyter.batch(df["prompt"], size="2K", aspect="3:2", display_name="shots")
    job.state, job.counts, job.progress     # "running", (120, 3, 500), 0.246
    job.wait(); job.results()               # GenerationResults, in prompt order

Who runs what: the batch's life (create, poll, download) is a slow task on the session's
background loop (batch_runner.py); everything blocking runs in worker threads. A kernel
that dies leaves the batch at the service and its state in the ledger: loading the
extension again (or `resume()`) picks unfinished batches up where they stopped. Wire
details: batch_wire.py and docs/facts.md "Batch API".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import batch_wire as bw
from . import config, sizes
from .batch_runner import Runner, send_cancel
from .batch_store import FINAL_STATES, BatchLedger, BatchState, LineRow
from .errors import ConfigError
from .jobs import session
from .store import TOKEN_COLUMNS
from .types import Attempt, GenerationResult

log = logging.getLogger("nbp_jupyter")

class BatchJob:
    """A handle on one batch. `state` is creating, pending, running, collecting, done,
    failed, cancelled or expired; `counts` is (done, failed, total)."""

    def __init__(self, row: dict, settings: config.Settings):
        self.id: str = row["id"]
        self.display_name: str = row["display_name"]
        self.name: str | None = row["name"]  # batches/... once the service has named it
        self.state: BatchState = row["state"]
        self.total: int = row["total"]
        self.done_count: int = row["done"]
        self.failed_count: int = row["failed"]
        self.remote_done = 0  # what the service says while it runs
        self.cost_usd: float = row["cost_usd"]
        self.error: str | None = row["error"]
        self.created: float = row["created"]
        self.finished: float | None = row.get("finished")  # time.time() when it ended
        self.next_poll: float | None = None  # time.monotonic() of the next poll
        self.simulated = bool(row["simulated"])
        self.settings = settings
        self._future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._listeners: list[Callable[[BatchJob], None]] = []
        self._cancel_requested = False
        self._task: asyncio.Task | None = None
        if self.state in FINAL_STATES:
            self._future.set_result(None)

    # ----- what users call -------------------------------------------------------------
    @property
    def counts(self) -> tuple[int, int, int]:
        """(images collected, lines failed, lines in the batch)."""
        return self.done_count, self.failed_count, self.total

    @property
    def progress(self) -> float:
        """Share of lines finished: at the service while it runs, collected after."""
        finished = self.done_count + self.failed_count
        if self.state in ("pending", "running", "creating"):
            finished = max(finished, self.remote_done)
        return finished / self.total if self.total else 1.0

    def done(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the batch is collected or ends, or `timeout` seconds pass; True if it
        ended. Interrupt (Ctrl-C) stops the waiting, not the batch."""
        try:
            self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            return False
        return True

    def results(self) -> list[GenerationResult]:
        """The lines recorded so far, in prompt order: images, and failed lines with their
        error. Lines the service never answered are left out (see `missing()`)."""
        store = session().store(self.settings)
        out = []
        for line in self._lines():
            if line.job_id:
                row = store.job(line.job_id)
                if row is not None:
                    out.append(_result(row, store.attempts(line.job_id)))
        return out

    def missing(self) -> list[str]:
        """Prompts with no result line (yet): not billed."""
        return [line.prompt for line in self._lines() if line.job_id is None]

    def _lines(self) -> list[LineRow]:
        with BatchLedger(self.settings.home) as ledger:  # the runner's own is for the runner
            return ledger.lines(self.id)

    def cancel(self) -> bool:
        """Ask the service to cancel the batch; lines already finished may still be billed."""
        if self.done():
            return False
        self._cancel_requested = True
        if self.name:
            loop = session().loop
            asyncio.run_coroutine_threadsafe(send_cancel(self), loop)
        return True

    def add_listener(self, fn: Callable[[BatchJob], None]) -> None:
        """fn(job) on the background thread after each change, and once when it ends."""
        self._listeners.append(fn)
        if self.done():
            fn(self)

    def __repr__(self) -> str:
        done, failed, total = self.counts
        return (f"<BatchJob {self.id} {self.display_name!r} {self.state} {done} done, "
                f"{failed} failed of {total}>")

    # ----- fed by the runner ---------------------------------------------------------------
    def _changed(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)
        if self.state in FINAL_STATES and not self._future.done():
            if self.finished is None:
                self.finished = time.time()  # the ledger's `finished`, as near as we know
            self._future.set_result(None)
        for fn in list(self._listeners):
            try:
                fn(self)
            except Exception:  # a broken display must not stop the batch
                log.exception("listener %r of batch %s failed", fn, self.id)


# ----- the public API --------------------------------------------------------------------
_handles: dict[str, BatchJob] = {}
_handles_lock = threading.Lock()


def batch(prompts: Iterable[str | dict], *, size: str | None = None, aspect: str | None = None,
          model: str | None = None, display_name: str | None = None,
          provider: str | None = None, base_url: str | None = None, api_key: str | None = None,
          home: str | Path | None = None, time_scale: float | None = None,
          sim_profile: str | None = None, max_response_mb: float | None = None) -> BatchJob:
    """Send prompts to the Batch API (half price, results within 24 hours) and return at once.

    Args:
        prompts: a list of prompts, a pandas column, or dicts with "prompt" and optionally
            "size" and "aspect" for that row.
        size, aspect: the default for rows that do not say ("1K" and "1:1" if unset).
        model: the model (default NBP_MODEL, else gemini-3-pro-image-preview).
        display_name: a name to find the batch by later (the id is appended at the service,
            which is how a lost create is recognised).
        provider: "gemini" or "sim" (the Batch API is Gemini's).
        base_url, api_key, home, time_scale, sim_profile, max_response_mb: as for submit().
    """
    lines = _lines(prompts, size, aspect)
    settings = config.resolve(provider=provider, base_url=base_url, model=model,
                              api_key=api_key, home=home, time_scale=time_scale,
                              sim_profile=sim_profile, max_response_mb=max_response_mb)
    if settings.wire != "gemini":
        raise ConfigError("the Batch API is Gemini's; an OpenAI-compatible gateway has none "
                          "here", hint="use provider='gemini' (or 'sim' to try it)")
    if display_name is not None and (not isinstance(display_name, str)
                                     or not display_name.strip()):
        raise ConfigError("display_name must be a non-empty string")
    store = session().store(settings)  # the ledger and its jobs table exist from here on
    batch_id = f"b{uuid.uuid4().hex[:9]}"
    # Unique at the service: how a create whose answer was lost is found again.
    remote_name = f"{display_name.strip()}-{batch_id}" if display_name else f"nbp-{batch_id}"
    ledger = BatchLedger(settings.home)
    try:
        ledger.record_intent(batch_id, remote_name, store.session, settings.provider,
                             settings.base_url, settings.model, settings.time_scale,
                             [(line.key, line.prompt, line.size, line.aspect) for line in lines])
        row = ledger.batch(batch_id)
        assert row is not None  # just written
    except BaseException:
        ledger.close()
        raise
    return _start(row, ledger, settings)


def batch_job(which: str | None = None, *, home: str | Path | None = None) -> BatchJob:
    """A handle on a batch from the ledger, by id or display name (default: the newest);
    an unfinished one starts being watched again."""
    settings = config.resolve(provider="sim", home=home)
    session().store(settings)
    with BatchLedger(settings.home) as ledger:
        rows = ledger.batches()
    for row in rows:
        if which is None or which in (row["id"], row["display_name"], row["name"]) or (
                row["display_name"].rsplit("-", 1)[0] == which):
            return resume_row(row, settings.home)
    raise ConfigError(f"no batch {which!r} in the ledger at {settings.home}"
                      if which else f"no batches in the ledger at {settings.home}",
                      hint="%nbp_batches lists them")


def batch_jobs() -> list[BatchJob]:
    """The batch handles of this process, oldest first."""
    with _handles_lock:
        return list(_handles.values())


def resume(home: str | Path | None = None) -> list[BatchJob]:
    """Watch again every unfinished batch in the ledger (the extension calls this on load).
    A batch whose provider has no key now is skipped with a log message."""
    settings = config.resolve(provider="sim", home=home)
    if not (settings.home / "ledger.sqlite").exists():
        return []
    session().store(settings)
    with BatchLedger(settings.home) as ledger:
        rows = ledger.unfinished()
    resumed = []
    for row in rows:
        try:
            resumed.append(resume_row(row, settings.home))
        except ConfigError as exc:
            log.warning("batch %s not resumed: %s", row["id"], exc.one_line())
    return resumed


def resume_row(row: dict, home: Path) -> BatchJob:
    with _handles_lock:
        known = _handles.get(row["id"])
    if known is not None:
        return known
    settings = config.resolve(provider=row["provider"], base_url=row["base_url"],
                              model=row["model"], time_scale=row["time_scale"], home=home)
    return _start(row, BatchLedger(home), settings)


def _start(row: dict, ledger: BatchLedger, settings: config.Settings) -> BatchJob:
    job = BatchJob(row, settings)
    with _handles_lock:
        _handles[job.id] = job
    if job.done():
        ledger.close()
        return job
    base_url = settings.base_url or session().sim_url(settings)
    asyncio.run_coroutine_threadsafe(Runner(job, settings, base_url, ledger).run(),
                                     session().loop)
    return job


def _lines(prompts: Iterable[str | dict], size: str | None, aspect: str | None) -> list[bw.Line]:
    if isinstance(prompts, (str, bytes)):
        raise ConfigError("batch() takes a list of prompts, not one string",
                          hint="use generate() or submit() for one image, or wrap it: [prompt]")
    if hasattr(prompts, "columns") and hasattr(prompts, "to_dict"):  # a whole DataFrame
        rows = prompts.to_dict("records")  # iterating it would yield its column names
    else:
        rows = list(prompts.tolist() if hasattr(prompts, "tolist") else prompts)
    if not rows:
        raise ConfigError("no prompts to send", hint="give a list or a pandas column of prompts")
    lines = []
    for number, item in enumerate(rows):
        options = dict(item) if isinstance(item, dict) else {"prompt": item}
        unknown = set(options) - {"prompt", "size", "aspect"}
        if unknown:
            raise ConfigError(f"row {number}: unknown field(s) {', '.join(sorted(unknown))}",
                              hint="a row may give prompt, size and aspect")
        prompt = options.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConfigError(f"row {number}: the prompt is empty or not text ({prompt!r})")
        try:
            line_size = sizes.normalize_resolution(options.get("size") or size or "1K")
            line_aspect = sizes.normalize_aspect(options.get("aspect") or aspect or "1:1")
        except ValueError as exc:
            raise ConfigError(f"row {number}: {exc}") from None
        lines.append(bw.Line(f"{number:05d}", prompt, line_size, line_aspect))
    return lines


def _result(row: Any, attempts: list[Any]) -> GenerationResult:
    """A GenerationResult from a ledger job row and its attempt rows."""
    return GenerationResult(
        success=row["status"] == "done", requested=row["requested"],
        resolution=row["resolution"], downgraded=bool(row["downgraded"]), width=row["width"],
        height=row["height"], image_path=Path(row["image_path"]) if row["image_path"] else None,
        model=row["model"], attempts=[Attempt(
            number=a["number"], resolution=a["resolution"], model=a["model"],
            provider=a["provider"], outcome=a["outcome"], http_status=a["http_status"],
            waited_s=a["waited_s"] or 0.0, elapsed_s=a["elapsed_s"] or row["elapsed_s"] or 0.0,
            billed=a["billed"], cost_usd=a["cost_usd"], detail=a["detail"], width=a["width"],
            height=a["height"], **{c: a.get(c) for c in TOKEN_COLUMNS}) for a in attempts],
        elapsed_s=row["elapsed_s"] or 0.0, cost_usd=row["cost_usd"],
        cost_unknown_usd=row["cost_unknown_usd"], error=row["error"],
        simulated=bool(row["simulated"]), prompt=row["prompt"], job_id=row["id"],
        silent_downgrade=bool(row["silent_downgrade"]))

