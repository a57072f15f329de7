"""`%%nbp` and the line magics: parse, check, hand off to the session, show a live view.

Every user mistake becomes a one-line UsageError before anything is sent.
"""

from __future__ import annotations

import html
import logging
import os
import string
import time
from dataclasses import replace

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import HTML, display
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, validate
from traitlets.config import Config, Configurable

from . import api, live, stale
from . import display as render
from .errors import ConfigError
from .jobs import Job, session
from .options import Options
from .records import load_history, ran_for_text, result_from_record
from .timefmt import clock, short

WAIT_MODES = ("auto", "always", "never")


class Nbp(Configurable):
    """Defaults for the magics: `%config Nbp.size = "2K"`. Magic options win over these;
    these win over the NBP_* environment variables."""

    provider = Unicode(None, allow_none=True,
                       help="gemini, openai, chat, openrouter or sim").tag(config=True)
    base_url = Unicode(None, allow_none=True, help="endpoint URL").tag(config=True)
    model = Unicode(None, allow_none=True, help="model name").tag(config=True)
    home = Unicode(None, allow_none=True, help="folder for images and the ledger").tag(config=True)
    time_scale = Float(None, allow_none=True, help="multiply every wait and timeout").tag(config=True)
    max_concurrency = Int(None, allow_none=True, help="requests in flight at once").tag(config=True)
    sim_profile = Unicode(None, allow_none=True, help="simulator profile").tag(config=True)
    size = Unicode("1K", help="default size: 1K, 2K or 4K").tag(config=True)
    aspect = Unicode("1:1", help="default aspect ratio, e.g. 16:9").tag(config=True)
    wait = Enum(WAIT_MODES, "auto", help="block the cell until done: auto waits only when "
                "no one is watching (nbclient, nbconvert, papermill)").tag(config=True)
    fallback = Unicode(None, allow_none=True, help="default fallback list, e.g. '2K,1K' or "
                       "'openai:4K,2K'; 'none' for no fallback (default: every smaller size)"
                       ).tag(config=True)
    hedge = Bool(False, help="hedge slow calls by default (as --hedge)").tag(config=True)

    @validate("size", "aspect", "provider", "time_scale", "max_concurrency", "sim_profile",
              "base_url", "fallback")
    def _check(self, proposal):
        """Refuse a bad value when %config sets it (IPython logs this one line), not at the
        next cell; the setting keeps its old value."""
        name = proposal.trait.name
        try:
            return api.config.check_default(name, proposal.value)
        except ConfigError as exc:
            raise TraitError(f"Nbp.{name} = {proposal.value!r} refused, the setting is "
                             f"unchanged: {exc.one_line()}") from None

    def _load_config(self, cfg, section_names=None, traits=None):
        """Take the good values and refuse each bad one in one logged line (as IPython logs
        %config errors). IPython keeps a refused value in the shell's config too, so a later
        %reload_ext reads it again: that must not fail the extension."""
        try:
            super()._load_config(cfg, section_names, traits)
        except TraitError:
            for name, value in dict(cfg.get("Nbp", {})).items():
                try:
                    super()._load_config(Config({"Nbp": {name: value}}), section_names, traits)
                except TraitError as exc:
                    logging.error("%s", exc)

    def said(self) -> set[str]:
        """The settings %config (or code) changed from the built-in defaults."""
        return {n for n, trait in self.traits(config=True).items()
                if getattr(self, n) != trait.default()}

    def fallback_option(self) -> bool | str:
        """What `fallback=` gets when a cell does not say."""
        if self.fallback is None:
            return True
        text = self.fallback.strip()
        return False if text.lower() in ("", "none", "false", "no") else text

    def options(self) -> Options:
        """These defaults as the configured layer of the one options path (options.py)."""
        return Options(size=self.size, aspect=self.aspect, hedge=self.hedge,
                       fallback=None if self.fallback is None else self.fallback_option(),
                       **self.settings_kwargs())

    def settings_kwargs(self) -> dict:
        names = ("provider", "base_url", "model", "home", "time_scale", "max_concurrency",
                 "sim_profile")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}


def _usage(exc: ConfigError) -> UsageError:
    return UsageError(exc.one_line())


def _no_arguments(magic: str, line: str, instead: str) -> None:
    """A line magic that takes nothing says so, instead of ignoring what was typed."""
    if line.strip():
        raise UsageError(f"%{magic} takes no arguments, got {short(line, 40)!r}; {instead}")


def _parse(magic, line: str):
    """parse_argstring, with shell-quoting mistakes as a one-line UsageError too."""
    try:
        return parse_argstring(magic, line)
    except ValueError as exc:  # shlex: "No closing quotation" and friends
        raise UsageError(f"could not read the options ({exc}); check your quotes") from None


@magics_class
class NbpMagics(Magics):
    def __init__(self, shell, conf: Nbp):
        super().__init__(shell)
        self.conf = conf

    @magic_arguments()
    @argument("--size", "-s", help="1K, 2K or 4K (default %%config Nbp.size, 1K)")
    @argument("--aspect", "-a", help="1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4, 9:16, 16:9 or 21:9")
    @argument("--model", "-m", help="model name (default NBP_MODEL or gemini-3-pro-image-preview)")
    @argument("--provider", "-p", help="gemini, openai, chat, openrouter or sim (default: by "
              "which key is set)")
    @argument("--timeout", type=float, help="seconds per attempt (default: the size's P99 at "
              "the pace calls run now, 4K 200 s when healthy, up to 660)")
    @argument("--retries", type=int, help="extra tries at each size (default 4K 2, 2K 1, 1K 2, "
              "and one more at the size asked when at most one failure took long)")
    @argument("--fallback", help="sizes, models or providers to fall back to, e.g. '2K,1K' or "
              "'2K,openai:2K' (default: every smaller size)")
    @argument("--no-fallback", action="store_true", help="never fall back to a smaller size")
    @argument("--image", action="append", default=[], metavar="PATH",
              help="reference image (repeatable, up to 14; PNG, JPEG or WebP)")
    @argument("--refine", metavar="ID", help="continue the conversation of job ID (from "
              "%%nbp_jobs or %%nbp_history; _ for this session's last image): the cell says "
              "what to change; size and aspect stay the job's unless given")
    @argument("--search", action="store_true",
              help="ground the image in Google Search (Gemini; queries are billed)")
    @argument("-n", type=int, default=1, help="how many independent images (1 to 16), one "
              "under another")
    @argument("--wait", action="store_true", help="block this cell until done (interruptible)")
    @argument("--out", metavar="NAME", help="bind the Job (or list of Jobs with -n) to NAME")
    @argument("--deadline", type=float, help="seconds for the whole job, retries included")
    @argument("--hedge", action="store_true",
              help="if a call is still running at its size's P95 (4K 170 s), start another "
                   "beside it (the same size while it is healthy, else the next size down); "
                   "the first image wins (may cost a second call)")
    @argument("--no-hedge", action="store_true", help="do not hedge, even if Nbp.hedge is on")
    @argument("--interpolate", action="store_true",
              help="expand {name} in the prompt from your variables (off: braces and $ are text)")
    @argument("words", nargs="*", help="the prompt, for one-line use: %%nbp a red fox")
    @no_var_expand  # the line form keeps {name} and $ as text too, as the cell form does
    @line_cell_magic
    def nbp(self, line: str, cell: str | None = None):
        """Generate an image from the cell body (the prompt), in the background.

        The cell returns at once; a status line below it shows the attempt, elapsed time,
        what to expect and how to cancel, then the image and a one-line caption.
        """
        args = _parse(self.nbp, line)
        if cell is not None and args.words:
            raise UsageError(f"unexpected words after the options: {' '.join(args.words)!r}; "
                             "the prompt is the cell body")
        prompt = cell if cell is not None else " ".join(args.words)
        prompt = prompt.strip("\n")
        if args.interpolate:
            prompt = self._interpolate(prompt)
        if args.n < 1 or args.n > 16:
            raise UsageError(f"-n must be between 1 and 16, got {args.n}")
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"--out needs a Python name, got {args.out!r}")
        said = Options(size=args.size, aspect=args.aspect, model=args.model,
                       provider=args.provider, images=tuple(args.image), timeout=args.timeout,
                       search=True if args.search else None,
                       retries=args.retries, deadline=args.deadline,
                       fallback=False if args.no_fallback else args.fallback,
                       hedge=False if args.no_hedge else (True if args.hedge else None))
        options = said.over(self.conf.options())
        try:
            if args.refine is not None:  # size and aspect: the refined job's, unless said
                request, settings, policy = api.prepare_refine(
                    self._refined(args.refine), prompt,
                    options.with_(size=args.size, aspect=args.aspect))
            else:
                request, settings, policy = api.prepare_options(prompt, options)
            jobs = [session().submit(request, settings, policy) for _ in range(args.n)]
        except ConfigError as exc:
            raise _usage(exc) from None
        if args.out:
            self.shell.user_ns[args.out] = jobs if args.n > 1 else jobs[0]
        live.show(jobs, settings)
        if args.wait or self._headless():
            self._wait(jobs)

    @staticmethod
    def _refined(given: str) -> str:
        """The job id --refine names; `_` is this session's last job that made an image. A
        newer job still running is an error: skipping it would refine an older image."""
        if given.strip() != "_":
            return given
        jobs = list(session().jobs.values())
        running = [job.id for job in jobs if not job.done()]
        if running:
            raise UsageError(f"--refine _: job {running[-1]} is still running, so this "
                             f"session's last image is not made yet; wait for it "
                             f"(%nbp_wait {running[-1]}), or give the id of the job to refine")
        made = [job.id for job in jobs if job.result().success]
        if not made:
            raise UsageError("--refine _ needs an image made in this session; give a job id "
                             "from %nbp_history instead")
        return made[-1]

    def _interpolate(self, prompt: str) -> str:
        try:
            return string.Formatter().vformat(prompt, (), self.shell.user_ns)
        except (KeyError, AttributeError, IndexError, ValueError) as exc:
            raise UsageError(f"--interpolate could not fill {exc}; define it, or write "
                             "{{ and }} for literal braces") from None

    def _headless(self) -> bool:
        """True where nobody watches live updates: the runner only keeps the end state."""
        mode = os.environ.get("NBP_WAIT", "").strip().lower() or self.conf.wait
        if mode in ("always", "1", "true"):
            return True
        if mode in ("never", "0", "false"):
            return False
        kernel = getattr(self.shell, "kernel", None)
        return kernel is not None and not getattr(kernel, "_allow_stdin", True)

    def _wait(self, jobs: list[Job], timeout: float | None = None) -> None:
        end = None if timeout is None else time.monotonic() + timeout  # for all the jobs
        try:
            for job in jobs:
                while not job.done():  # short waits keep Interrupt responsive
                    left = 0.2 if end is None else min(0.2, end - time.monotonic())
                    if left <= 0:
                        break
                    job.wait(left)
        except KeyboardInterrupt:
            running = [j.id for j in jobs if not j.done()]
            print(f"stopped waiting; still running in the background: {', '.join(running)} "
                  f"(%nbp_cancel ID to stop)")
            return
        live.resend(jobs)
        running = [j.id for j in jobs if not j.done()]
        if running:  # silence here read as "all done"
            print(f"stopped waiting after {timeout:g} s; still running: {', '.join(running)} "
                  f"(%nbp_wait to wait on, %nbp_cancel ID to stop)")

    def _ledger(self):
        """The ledger these settings point at, whatever the provider (no key needed to read)."""
        try:
            settings = api.config.resolve(**{**self.conf.settings_kwargs(), "provider": "sim"})
        except ConfigError as exc:
            raise _usage(exc) from None
        return session().store(settings)

    def announce_stale(self) -> None:
        """Bring status lines left by an earlier kernel up to date (stale.py)."""
        try:
            settings = api.config.resolve(**{**self.conf.settings_kwargs(), "provider": "sim"})
        except ConfigError:
            return  # a bad setting is reported by the magic that needs it
        stale.announce(replace(settings, time_scale=self._scale()))

    def _scale(self) -> float:
        """The time scale these settings run at (the simulator's when no key is set)."""
        try:
            return api.config.resolve(**self.conf.settings_kwargs()).time_scale
        except ConfigError:
            return api.config.resolve(**{**self.conf.settings_kwargs(), "provider": "sim"}).time_scale

    def _jobs(self, ids: list[str]) -> list[Job]:
        known = session().jobs
        missing = [i for i in ids if i not in known]
        if missing:
            raise UsageError(f"no job {', '.join(missing)} in this session; %nbp_jobs lists them")
        return [known[i] for i in ids]

    @magic_arguments()
    @argument("ids", nargs="*", help="job ids (default: every running job)")
    @argument("--timeout", type=float, help="stop waiting after this many seconds")
    @line_magic
    def nbp_wait(self, line: str):
        """Block until jobs finish (Interrupt stops waiting), then show their final state."""
        args = _parse(self.nbp_wait, line)
        jobs = self._jobs(args.ids) if args.ids else list(session().jobs.values())
        self._wait(jobs, args.timeout)

    @magic_arguments()
    @argument("ids", nargs="*", help="job ids")
    @argument("--all", action="store_true", help="cancel every running job")
    @line_magic
    def nbp_cancel(self, line: str):
        """Cancel jobs: the socket is closed and the attempt recorded as billed=unknown."""
        args = _parse(self.nbp_cancel, line)
        if not args.ids and not args.all:
            raise UsageError("name a job id (see %nbp_jobs) or use --all")
        jobs = session().running() if args.all else self._jobs(args.ids)
        cancelled = session().cancel(jobs)
        print(f"cancelled {', '.join(cancelled)}" if cancelled else "nothing was running")

    @line_magic
    def nbp_jobs(self, line: str = ""):
        """The jobs of this session, running first, with elapsed time."""
        _no_arguments("nbp_jobs", line, "it lists every job of this session "
                      "(%nbp_show ID or %nbp_wait ID for one job)")
        jobs = sorted(session().jobs.values(), key=lambda j: (j.done(), -j.submitted))
        rows = [[j.id, j.status, j.request.size + (f" → {j.resolution}" if j.resolution != j.request.size else ""),
                 j.attempt, clock(render.service_elapsed(j)), short(j.request.prompt, 50)]
                for j in jobs]
        display(HTML(render.table_html(["job", "status", "size", "attempt", "elapsed", "prompt"], rows)))
        self.announce_stale()

    @magic_arguments()
    @argument("--all", action="store_true", help="every session in the ledger, not just this one")
    @argument("--limit", type=int, default=50, help="at most this many jobs (default 50)")
    @line_magic
    def nbp_history(self, line: str):
        """Jobs from the ledger with cost and outcome, and the totals."""
        args = _parse(self.nbp_history, line)
        if args.limit < 1:  # SQLite reads 0 and below as "no limit"
            raise UsageError(f"--limit must be 1 or more, got {args.limit}; "
                             "leave it out for the last 50 jobs")
        store = self._ledger()
        records = load_history(store, limit=args.limit,
                               session=None if args.all else store.session)
        scale = self._scale()
        display({"text/html": history_html(records, scale),
                 "text/plain": history_text(records, scale)}, raw=True)
        if not records and not args.all:
            print("Nothing yet in this session; %nbp_history --all lists earlier sessions.")
        self.announce_stale()

    @magic_arguments()
    @argument("id", help="a job id from %%nbp_history")
    @line_magic
    def nbp_show(self, line: str):
        """Show a past image again, from the file on disk; a failed job's card says why."""
        args = _parse(self.nbp_show, line)
        store = self._ledger()
        row = store.job(args.id)
        if row is None:
            raise UsageError(f"no job {args.id!r} in the ledger at {store.home}")
        path = row.get("image_path")
        ended_without = row["status"] != "done" and row.get("error")
        if (not path or not os.path.isfile(path)) and not ended_without:
            raise UsageError(f"job {args.id} has no image on disk ({row['status']})")
        row["attempts"] = store.attempts(args.id)
        row.update(store.turn_of(args.id))  # type: ignore[typeddict-item]
        picture, caption = render.result_outputs(result_from_record(row))
        if picture is not None:
            display(picture[0], metadata=picture[1], raw=True)
        display(caption, raw=True)

    @magic_arguments()
    @argument("--budget", type=float,
              help="ask before a click that would take this session's spending past it ($)")
    @line_magic
    def nbp_panel(self, line: str):
        """A panel to explore prompts by clicking: jobs, gallery, costs (needs ipywidgets)."""
        from .panel_widget import show_panel

        args = _parse(self.nbp_panel, line)
        if args.budget is not None and not args.budget > 0:  # the box would make it "none"
            raise UsageError(f"--budget must be above 0 dollars, got {args.budget:g}; leave "
                             "it out for no budget")
        try:
            show_panel(self.conf.settings_kwargs(), size=self.conf.size,
                       aspect=self.conf.aspect, budget=args.budget,
                       fallback=self.conf.fallback_option(), hedge=self.conf.hedge)
        except ConfigError as exc:
            raise _usage(exc) from None

    @line_magic
    def nbp_config(self, line: str = ""):
        """The effective settings (the key is only said to be set, never shown)."""
        _no_arguments("nbp_config", line, "change a setting with %config, e.g. "
                      "%config Nbp.size = '2K'")
        try:
            settings = api.config.resolve(**self.conf.settings_kwargs())
        except ConfigError as exc:
            raise _usage(exc) from None
        described = settings.describe()
        if settings.provider == "sim":  # its built-in key is no key of the user's
            described["api_key"] = "simulator, no key needed"
        said = self.conf.said()
        rows = [[k, v, api.config.origin(k, settings, said)] for k, v in described.items()]
        fallback = self.conf.fallback_option()
        for name, value in (("size", self.conf.size), ("aspect", self.conf.aspect),
                            ("wait", self.conf.wait), ("fallback", {True: "every smaller size",
                             False: "none"}.get(fallback, fallback)), ("hedge", self.conf.hedge)):
            wait_var = os.environ.get("NBP_WAIT", "").strip() if name == "wait" else ""
            if wait_var:  # _headless reads it before Nbp.wait
                rows.append([name, wait_var, "NBP_WAIT"])
            else:
                rows.append([name, value, f"%config Nbp.{name}" if name in said else "default"])
        rows += [[*row, ""] for row in _fallback_endpoints(self.conf.options(), settings)]
        display(HTML(render.table_html(["setting", "value", "from"], rows)))


HISTORY_HEADERS = ["job", "time", "prompt", "requested → delivered", "attempts", "elapsed",
                   "cost", "status"]
REASON_CHARS = 80  # a failure's reason in the history; %nbp_show ID gives the whole line


def _history_rows(records, scale: float) -> list[list]:
    rows = []
    for r in records:
        when = time.strftime("%m-%d %H:%M", time.localtime(r["created"]))
        got = r["resolution"] or "—"
        unknown = f" (+{r['cost_unknown_usd']:.3f}?)" if r["cost_unknown_usd"] else ""
        rows.append([r["id"], when, short(r["prompt"], 50), f"{r['requested']} → {got}",
                     len(r["attempts"]), ran_for_text(r, scale),
                     f"${r['cost_usd'] or 0:.3f}{unknown}", _status_and_reason(r)])
    return rows


def _status_and_reason(record) -> str:
    """'failed: HTTP 503 …' for a job that ended without an image (the ledger's one-line
    error, keys already masked by the engine); just the status otherwise."""
    status, error = record["status"], record.get("error")
    if status == "done" or not error:
        return status
    said = error if error.startswith(status) else f"{status}: {error}"  # not "cancelled: cancelled"
    return short(said, REASON_CHARS)


def _history_summary(records) -> str:
    totals = records.totals()
    rates = ", ".join(f"{res} {rate:.0%}" for res, rate in totals["success_rate"].items())
    count = render.counted
    return (f"{count(totals['images'], 'image')} from {count(totals['jobs'], 'job')} · "
            f"{count(totals['attempts'], 'attempt')} · billed ${totals['cost_usd']:.3f} · "
            f"unknown ${totals['cost_unknown_usd']:.3f} · success per attempt: {rates or '—'}"
            f"{_tokens(totals['tokens'])}")


def history_html(records, scale: float = 1.0) -> str:
    rows = [row + [render.thumbnail_html(r["image_path"])]
            for row, r in zip(_history_rows(records, scale), records)]
    summary = f"<p class='{render.NO_MATH}'>{html.escape(_history_summary(records))}</p>"
    return summary + render.table_html(HISTORY_HEADERS + ["image"], rows, raw_columns={8})


def history_text(records, scale: float = 1.0) -> str:
    """The history for text front ends (a terminal, nbconvert to text): the HTML's table
    in aligned columns, without the thumbnails."""
    rows = [HISTORY_HEADERS] + [[str(c) for c in row] for row in _history_rows(records, scale)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HISTORY_HEADERS) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows]
    return "\n".join([_history_summary(records), *lines])


def _fallback_endpoints(configured: Options, settings) -> list[list[str]]:
    """One row per other provider the default fallback list steps to: where it goes, and
    whether its key is there (never the key), or what is wrong with it."""
    if not isinstance(configured.fallback, str):
        return []
    try:  # the whole list: as a 4K cell would use it
        providers = api.fallback_providers(Options(size="4K").over(configured))
    except ConfigError as exc:
        return [["fallback problem", exc.one_line()]]
    rows = []
    for name in providers:
        try:
            other = api.config.resolve_alternate(name, settings)
            rows.append([f"fallback {name}", f"{other.base_url or '(built-in simulator)'}, "
                                             f"model {other.model}, key set"])
        except ConfigError as exc:
            rows.append([f"fallback {name}", exc.one_line()])
    return rows


def _tokens(tokens: dict) -> str:
    """' · tokens: output_image 2,240, thought 300, ...' for the kinds that were reported."""
    said = ", ".join(f"{kind} {count:,}" for kind, count in tokens.items() if count)
    return f" · tokens: {said}" if said else ""
