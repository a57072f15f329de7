"""An ipywidgets panel for exploring prompts by clicking: `%nbp_panel` or `nbp_jupyter.panel()`.

Widgets are built once; afterwards only their values change (tqdm's habit), from the
background loop as job events arrive and from a one-second ticker for elapsed times.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

from . import api, display, sizes
from .config import Settings
from .errors import ConfigError
from .estimate import budget_warning, estimate
from .events import Finished
from .jobs import Job, session
from .policy import trim_ladder
from .preview import preview_jpeg
from .records import load_history
from .types import GenerationResult

TICK_S = 1.0
THUMB = 256
PROVIDERS = ("(default)", "sim", "gemini", "openai")


class Panel:
    def __init__(self, settings_kwargs: dict | None = None, *, size: str = "1K",
                 aspect: str = "1:1", budget: float | None = None,
                 fallback: bool | str = True, hedge: bool = False):
        import ipywidgets as w

        # the box turns fallback on or off; a configured list (Nbp.fallback) is what "on" means
        self.ladder = fallback if isinstance(fallback, str) else True

        self.settings_kwargs = dict(settings_kwargs or {})
        base = self._settings()
        self.prompt = w.Textarea(placeholder="Describe the image…",
                                 layout=w.Layout(width="100%", height="70px"))
        self.size = w.Dropdown(options=sizes.RESOLUTIONS, value=size, description="size")
        self.aspect = w.Dropdown(options=sizes.ASPECTS, value=aspect, description="aspect")
        self.model = w.Text(value=base.model, description="model")
        self.provider = w.Dropdown(options=PROVIDERS, value="(default)", description="provider")
        self.fallback = w.Checkbox(value=fallback is not False,
                                   description="fall back to smaller sizes")
        self.hedge = w.Checkbox(value=hedge, description="hedge slow calls",
                                tooltip="past its size's P99, start the next size down beside it")
        self.count = w.BoundedIntText(value=1, min=1, max=8, description="count")
        self.budget = w.BoundedFloatText(value=budget or 0.0, min=0.0, max=1e6, step=0.5,
                                         description="budget $", tooltip="0: no budget")
        self.go = w.Button(description="Generate", button_style="primary", icon="play")
        self.estimate = w.HTML()
        self.message = w.HTML()
        self.confirm_yes = w.Button(description="Spend anyway", button_style="warning")
        self.confirm_no = w.Button(description="Don't")
        self.confirm = w.HBox([self.confirm_yes, self.confirm_no],
                              layout=w.Layout(display="none"))
        self.jobs = w.VBox()
        self.gallery = w.GridBox(layout=w.Layout(
            grid_template_columns=f"repeat(auto-fill, {THUMB + 10}px)", grid_gap="6px"))
        self.selected_info = w.HTML()
        self.copy_prompt = w.Button(description="Copy prompt")
        self.again = w.Button(description="Again")
        self.upgrade = w.Button(description="Upgrade to 4K", button_style="info")
        self.selection = w.VBox([self.selected_info, w.HBox([self.copy_prompt, self.again,
                                                             self.upgrade])],
                                layout=w.Layout(display="none"))
        self.footer = w.HTML()
        for widget, name in ((self.go, "nbp-generate"), (self.prompt, "nbp-prompt"),
                             (self.jobs, "nbp-jobs"), (self.gallery, "nbp-gallery"),
                             (self.footer, "nbp-footer"), (self.confirm_yes, "nbp-confirm"),
                             (self.estimate, "nbp-estimate"), (self.message, "nbp-message")):
            widget.add_class(name)
        self.widget = w.VBox([
            self.prompt, w.HBox([self.size, self.aspect, self.count]),
            w.HBox([self.provider, self.model]),
            w.HBox([self.fallback, self.hedge, self.budget]),
            w.HBox([self.go, self.estimate]), self.message, self.confirm,
            w.HTML("<b>Jobs</b>"), self.jobs, w.HTML("<b>Gallery</b>"), self.gallery,
            self.selection, self.footer])
        self.rows: dict[str, tuple] = {}  # job id -> (job, status, cancel, settings, options)
        self.results: dict[str, GenerationResult] = {}
        self.selected: GenerationResult | None = None
        self._pending: dict | None = None
        self.go.on_click(lambda _: self.click())
        self.confirm_yes.on_click(lambda _: self._confirmed(True))
        self.confirm_no.on_click(lambda _: self._confirmed(False))
        self.copy_prompt.on_click(lambda _: self._copy())
        self.again.on_click(lambda _: self._resubmit(None))
        self.upgrade.on_click(lambda _: self._resubmit("4K"))
        for widget in (self.size, self.model, self.count, self.provider, self.budget):
            widget.observe(lambda _: self.refresh_estimate(), names="value")
        self.refresh_estimate()
        self.refresh_footer()
        self._ticker: asyncio.Task | None = None  # only touched on the background loop

    # ----- what the widgets ask for -------------------------------------------------------
    def _settings(self, provider: str | None = None, model: str | None = None) -> Settings:
        kw = dict(self.settings_kwargs)
        if provider and provider != "(default)":
            kw["provider"] = provider
        if model:
            kw["model"] = model
        return api.config.resolve(**kw)

    def _options(self, **override) -> dict:
        opts = dict(size=self.size.value, aspect=self.aspect.value,
                    fallback=trim_ladder(override.get("size", self.size.value), self.ladder)
                    if self.fallback.value else False,
                    hedge=self.hedge.value, model=self.model.value.strip() or None,
                    **self.settings_kwargs)
        if self.provider.value != "(default)":
            opts["provider"] = self.provider.value
        opts.update(override)
        return opts

    def spent(self) -> float:
        store = session().store(self._settings())
        return sum((r["cost_usd"] or 0) + (r["cost_unknown_usd"] or 0)
                   for r in store.jobs(session=store.session))

    def current_estimate(self):
        settings = self._settings(self.provider.value, self.model.value.strip() or None)
        return estimate(session().store(settings), settings.model, self.size.value,
                        self.count.value)

    def refresh_estimate(self) -> None:
        try:
            self.estimate.value = html.escape("Next click: " + self.current_estimate().line())
        except ConfigError as exc:
            self.estimate.value = f'<span style="color:#dc2626">{html.escape(exc.one_line())}</span>'

    def refresh_footer(self) -> None:
        store = session().store(self._settings())
        totals = load_history(store, session=store.session).totals()
        self.footer.value = html.escape(
            f"This session: {totals['images']} images, {totals['attempts']} attempts, billed "
            f"${totals['cost_usd']:.3f}, unknown ${totals['cost_unknown_usd']:.3f}")

    # ----- clicking -------------------------------------------------------------------------
    def click(self) -> list[Job]:
        """Generate, unless the click would pass the budget: then ask first."""
        self.message.value = ""
        options = self._options()
        try:
            est = self.current_estimate()
        except ConfigError as exc:
            self.message.value = html.escape(exc.one_line())
            return []
        warning = budget_warning(self.budget.value or None, self.spent(), est)
        if warning:
            self._pending = {"prompt": self.prompt.value, "options": options,
                             "count": self.count.value}
            self.message.value = html.escape(warning + " Spend anyway?")
            self.confirm.layout.display = "flex"
            return []
        return self.submit(self.prompt.value, options, self.count.value)

    def _confirmed(self, yes: bool) -> None:
        pending, self._pending = self._pending, None
        self.confirm.layout.display = "none"
        self.message.value = ""
        if yes and pending:
            self.submit(pending["prompt"], pending["options"], pending["count"])

    def submit(self, prompt: str, options: dict, count: int = 1) -> list[Job]:
        try:
            request, settings, policy = api.prepare(prompt, **options)
        except ConfigError as exc:
            self.message.value = f'<span style="color:#dc2626">{html.escape(exc.one_line())}</span>'
            return []
        jobs = []
        for _ in range(count):
            job = session().submit(request, settings, policy)
            self._add_row(job, settings, options)
            job.add_listener(self._on_event)
            jobs.append(job)
        session().loop.call_soon_threadsafe(self._ensure_ticker)
        return jobs

    def _add_row(self, job: Job, settings: Settings, options: dict) -> None:
        import ipywidgets as w
        status = w.HTML(self._row_html(job, settings))
        cancel = w.Button(description="Cancel", layout=w.Layout(width="80px", flex="0 0 auto"))
        cancel.add_class("nbp-cancel")
        cancel.on_click(lambda _: job.cancel())
        row = w.HBox([cancel, status])
        row.add_class("nbp-row")
        self.rows[job.id] = (job, status, cancel, settings, options)
        self.jobs.children = (row, *self.jobs.children)

    def _row_html(self, job: Job, settings: Settings,
                  result: GenerationResult | None = None) -> str:
        colour = display.COLOURS.get(job.status, "#6b7280")
        result = result or (job.result() if job.done() else None)
        if result is not None:  # listeners hear Finished just before job.done() turns true
            text = result.caption()
        else:
            text = display.status_text(job, None, settings.time_scale)
        return (f'<div class="nbp-row-status" data-state="{job.status}" style="border-left:4px '
                f'solid {colour}; padding-left:6px"><b style="color:{colour}">'
                f'{display.state_word(job.status)}</b> '
                f'{html.escape(display.short(job.request.prompt, 40))} · {html.escape(text)}</div>')

    # ----- from the background loop ---------------------------------------------------------
    def _on_event(self, job: Job, event) -> None:
        entry = self.rows.get(job.id)
        if entry is None:
            return
        _, status, cancel, settings, _ = entry
        final = event.result if isinstance(event, Finished) else None
        status.value = self._row_html(job, settings, final)
        if isinstance(event, Finished):
            cancel.disabled = True
            self.results[job.id] = event.result
            if event.result.success:
                self._add_to_gallery(event.result)
            self.refresh_footer()
            self.refresh_estimate()

    def _add_to_gallery(self, result: GenerationResult) -> None:
        import ipywidgets as w
        thumb = preview_jpeg(Path(result.image_path), THUMB)
        image = w.Image(value=thumb, format="jpeg", layout=w.Layout(max_width=f"{THUMB}px"))
        caption = w.HTML(f'<div style="font-size:11px; width:{THUMB}px">'
                         f'{html.escape(display.short(result.prompt, 60))}<br>'
                         f'{html.escape(result.requested)} → {html.escape(result.resolution or "")}'
                         f' · ${result.cost_usd:.3f}{" · SIMULATED" if result.simulated else ""}</div>')
        pick = w.Button(description="Select", layout=w.Layout(width=f"{THUMB}px"))
        pick.on_click(lambda _: self.select(result))
        item = w.VBox([image, caption, pick])
        item.add_class("nbp-gallery-item")
        self.gallery.children = (*self.gallery.children, item)

    def select(self, result: GenerationResult) -> None:
        self.selected = result
        self.selected_info.value = (f"<b>Selected</b> {html.escape(result.caption())}")
        self.selection.layout.display = "flex"

    def _copy(self) -> None:
        if self.selected:
            self.prompt.value = self.selected.prompt

    def _resubmit(self, size: str | None) -> list[Job]:
        """'Again' (same settings) or 'Upgrade' (same prompt at 4K)."""
        if not self.selected:
            return []
        entry = self.rows.get(self.selected.job_id)
        options = dict(entry[4]) if entry else self._options()
        if size:
            options["size"] = size
        return self.submit(self.selected.prompt, options, 1)

    def _ensure_ticker(self) -> None:
        """Runs on the background loop, so starting and ending the ticker cannot race."""
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        """Tick elapsed times once a second while any job runs; a panel left idle (or
        re-created by running its cell again) costs nothing."""
        while True:
            await asyncio.sleep(TICK_S)
            running = [row for row in list(self.rows.values()) if not row[0].done()]
            if not running:
                return
            for job, status, _, settings, _ in running:
                status.value = self._row_html(job, settings)


def show_panel(settings_kwargs: dict | None = None, **kw) -> Panel | None:
    """Display the panel; without a widget front end, say so in one line instead."""
    from IPython import get_ipython
    from IPython.display import display as ipy_display

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        print("The nbp panel needs Jupyter with ipywidgets (JupyterLab, Notebook 7, VS Code); "
              "here, use %%nbp or nbp_jupyter.generate().")
        return None
    try:
        panel = Panel(settings_kwargs, **kw)
    except ImportError:
        print("The nbp panel needs ipywidgets: pip install ipywidgets")
        return None
    ipy_display(panel.widget)
    return panel


def panel(budget: float | None = None, *, size: str = "1K", aspect: str = "1:1",
          fallback: bool | str = True, hedge: bool = False, **settings_kwargs) -> Panel | None:
    """Show the prompt-exploration panel in this cell (same as `%nbp_panel`)."""
    return show_panel(settings_kwargs, size=size, aspect=aspect, budget=budget,
                      fallback=fallback, hedge=hedge)
