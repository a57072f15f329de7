"""`%%nbp_batch` (one prompt per line, or `--from VAR`) and `%nbp_batches` (the ledger's
batches, or one batch's live view). Registered by `load_ipython_extension`, which also
resumes the unfinished batches of the ledger.
"""

from __future__ import annotations

import logging

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import HTML, display

from . import batch_view, batching, config
from .batch_store import BatchLedger
from .errors import ConfigError
from .magics import NbpMagics, _parse

log = logging.getLogger("nbp_jupyter")


@magics_class
class BatchMagics(Magics):
    def __init__(self, shell, conf):
        super().__init__(shell)
        self.conf = conf  # the `%config Nbp` defaults, shared with %%nbp

    # The same rule as %%nbp: wait in the cell when nobody watches live updates (nbclient).
    _headless = NbpMagics._headless  # type: ignore[assignment]

    @magic_arguments()
    @argument("--size", "-s", help="1K, 2K or 4K for every line (default %%config Nbp.size)")
    @argument("--aspect", "-a", help="aspect ratio for every line, e.g. 3:2")
    @argument("--model", "-m", help="model name")
    @argument("--provider", "-p", help="gemini or sim (the Batch API is Gemini's)")
    @argument("--name", help="a display name to find the batch by later")
    @argument("--from", dest="source", metavar="VAR",
              help="take the prompts from a variable: a list, or a pandas column")
    @argument("--out", metavar="NAME", help="bind the BatchJob to NAME")
    @argument("--wait", action="store_true", help="block this cell until the batch is collected")
    @line_cell_magic
    def nbp_batch(self, line: str, cell: str | None = None):
        """Send one prompt per line to the Batch API: half price, results within 24 hours.
        `%nbp_batch --from VAR` (one %) takes the prompts from a variable instead.

        The cell returns at once; a status line shows the state, done/failed of total,
        elapsed time and the next poll, and ends in a contact sheet of previews.
        """
        args = _parse(self.nbp_batch, line)
        assert self.shell is not None
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"--out needs a Python name, got {args.out!r}")
        cell = cell or ""
        if args.source:
            if cell.strip():
                raise UsageError("give the prompts in the cell or with --from, not both")
            if args.source not in self.shell.user_ns:
                raise UsageError(f"--from {args.source}: no such variable")
            prompts = self.shell.user_ns[args.source]
        else:
            prompts = [text.strip() for text in cell.splitlines() if text.strip()]
        kwargs = {**self.conf.settings_kwargs(),
                  **{k: v for k, v in (("model", args.model), ("provider", args.provider))
                     if v is not None}}
        kwargs = {k: v for k, v in kwargs.items()
                  if k in ("provider", "base_url", "model", "home", "time_scale", "sim_profile")}
        try:
            job = batching.batch(prompts, size=args.size or self.conf.size,
                                 aspect=args.aspect or self.conf.aspect,
                                 display_name=args.name, **kwargs)
        except ConfigError as exc:
            raise UsageError(exc.one_line()) from None
        if args.out:
            self.shell.user_ns[args.out] = job
        self._show(job, args.wait)

    @magic_arguments()
    @argument("which", nargs="?", help="a batch id or name: show its live view / contact sheet")
    @argument("--limit", type=int, default=50, help="at most this many batches (default 50)")
    @argument("--wait", action="store_true", help="with a batch: block until it is collected")
    @line_magic
    def nbp_batches(self, line: str):
        """The batches in the ledger with state, counts, cost and age; or one batch."""
        args = _parse(self.nbp_batches, line)
        home = self.conf.settings_kwargs().get("home")
        if args.which:
            try:
                job = batching.batch_job(args.which, home=home)
            except ConfigError as exc:
                raise UsageError(exc.one_line()) from None
            return self._show(job, args.wait)
        settings = config.resolve(provider="sim", home=home)
        if not (settings.home / "ledger.sqlite").exists():
            print(f"no batches yet in {settings.home}")
            return
        with BatchLedger(settings.home) as ledger:
            rows = ledger.batches(limit=args.limit)
        display(HTML(batch_view.table_html(rows)))

    def _show(self, job: batching.BatchJob, wait: bool) -> None:
        view = batch_view.BatchView(job)
        if wait or self._headless():  # type: ignore[misc]
            try:
                while not job.wait(0.2):
                    pass
            except KeyboardInterrupt:
                print(f"stopped waiting; batch {job.id} goes on (%nbp_batches {job.id})")
                return
            view.refresh()  # the contact sheet, sent while this cell still runs


def register(ipython, conf) -> None:
    """Add the batch magics and pick up unfinished batches of the default ledger."""
    ipython.register_magics(BatchMagics(ipython, conf))
    try:
        batching.resume(conf.settings_kwargs().get("home"))
    except Exception:  # a broken ledger must not stop the extension from loading
        log.exception("could not resume unfinished batches")
