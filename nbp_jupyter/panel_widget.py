"""An ipywidgets panel for exploring prompts by clicking: `%nbp_panel` or `nbp_jupyter.panel()`.

Widgets are built once; afterwards only their values change (tqdm's habit). Every change
happens on the UI thread (ui.py): a click on the kernel's thread and a job event on the
engine's loop only hand work over, so the ledger queries and previews a change needs never
stall the loop that times HTTP attempts, and two threads never change one widget.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from . import api, display, grounding, references, sizes, ui
from .config import Settings
from .errors import ConfigError, NbpError
from .estimate import budget_warning, estimate
from .events import Finished
from .jobs import Job, session
from .options import Options, from_kwargs
from .panel_turns import UPLOADS, TurnStrip, save_uploads
from .preview import preview_jpeg
from .records import load_history
from .timefmt import short
from .types import GenerationResult

THUMB = 256
PROVIDERS = ("(default)", "sim", "gemini", "openai", "chat", "openrouter")
WRAP = dict(flex_flow="row wrap", align_items="center")  # rows of controls wrap in narrow notebooks
SELECTED_BORDER, PLAIN_BORDER = "3px solid #2563eb", "3px solid transparent"


@dataclass
class Row:
    """One job in the job list: its widgets and what it was asked with (for 'Again')."""

    job: Job
    status: object
    cancel: object
    settings: Settings
    options: Options
    count: int = 1


@dataclass
class Tile:
    """One image in the gallery, with the paid clicks started from it (kind -> job)."""

    result: GenerationResult
    box: object
    pick: object
    started: dict = field(default_factory=dict)


class Panel:
    def __init__(self, settings_kwargs: dict | None = None, *, size: str = "1K",
                 aspect: str = "1:1", budget: float | None = None,
                 fallback: bool | str = True, hedge: bool = False):
        import ipywidgets as w

        # the box turns fallback on or off; a configured list (Nbp.fallback) is what "on" means
        self.ladder = fallback if isinstance(fallback, str) else True

        self.settings_kwargs = dict(settings_kwargs or {})
        self.configured = from_kwargs(self.settings_kwargs)  # %config Nbp, below the boxes
        base = self._settings()
        self.prompt = w.Textarea(placeholder="Describe the image…",
                                 layout=w.Layout(width="auto", height="70px"))  # fills, margins in
        self.size = w.Dropdown(options=sizes.RESOLUTIONS, value=size, description="size")
        self.aspect = w.Dropdown(options=sizes.ASPECTS, value=aspect, description="aspect")
        self.model = w.Text(value=base.model, description="model")
        self.provider = w.Dropdown(options=PROVIDERS, value="(default)", description="provider")
        self.fallback = w.Checkbox(value=fallback is not False,
                                   description="fall back to smaller sizes")
        self.hedge = w.Checkbox(value=hedge, description="hedge slow calls",
                                tooltip="past its size's P95, start a second call beside it "
                                        "(the same size unless it is failing for everyone)")
        self.count = w.BoundedIntText(value=1, min=1, max=8, description="count")
        self.upload = w.FileUpload(accept="image/png,image/jpeg,image/webp", multiple=True,
                                   description="Reference images", icon="upload",
                                   layout=w.Layout(width="auto"),
                                   # docs/facts.md "Notebook plumbing": Jupyter's message cap
                                   tooltip="PNG, JPEG or WebP, each under 10 MB (Jupyter's "
                                           "message limit); larger ones: images=[path]")
        self.uploaded = w.HTML()
        self.clear_uploads = w.Button(description="Clear", layout=w.Layout(width="auto"),
                                      tooltip="send no reference images")
        self.references: list[Path] = []  # the uploads, saved under NBP_HOME
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
            grid_template_columns=f"repeat(auto-fill, {THUMB + 16}px)", grid_gap="6px"))
        self.selected_info = w.HTML()
        fit = dict(width="auto", min_width="120px")  # these say which job they started
        self.copy_prompt = w.Button(description="Copy prompt", layout=w.Layout(**fit))
        self.again = w.Button(description="Again", tooltip="the same prompt and settings once more",
                              layout=w.Layout(**fit))
        self.upgrade = w.Button(description="Upgrade to 4K", button_style="info",
                                layout=w.Layout(**fit))
        self.turns = TurnStrip(self._show_selection)
        self.refine_prompt = w.Text(placeholder="What to change, e.g. make the sky darker",
                                    layout=w.Layout(flex="1 1 260px", width="auto"))
        self.refine = w.Button(description="Refine", button_style="primary", icon="comment",
                               layout=w.Layout(**fit))
        self.selection = w.VBox([self.selected_info,
                                 w.HBox([self.copy_prompt, self.again, self.upgrade],
                                        layout=w.Layout(**WRAP)),
                                 w.HTML("<b>Conversation</b> (pick a turn to refine; an "
                                        "earlier one starts a new branch)"),
                                 self.turns.box,
                                 w.HBox([self.refine_prompt, self.refine],
                                        layout=w.Layout(**WRAP))],
                                layout=w.Layout(display="none"))
        self.footer = w.HTML()
        for widget, name in ((self.go, "nbp-generate"), (self.prompt, "nbp-prompt"),
                             (self.jobs, "nbp-jobs"), (self.gallery, "nbp-gallery"),
                             (self.footer, "nbp-footer"), (self.confirm_yes, "nbp-confirm"),
                             (self.confirm_no, "nbp-confirm-no"), (self.budget, "nbp-budget"),
                             (self.estimate, "nbp-estimate"), (self.message, "nbp-message"),
                             (self.again, "nbp-again"), (self.upgrade, "nbp-upgrade"),
                             (self.copy_prompt, "nbp-copy"), (self.selection, "nbp-selection"),
                             (self.refine, "nbp-refine"), (self.refine_prompt, "nbp-refine-prompt"),
                             (self.upload, "nbp-upload"), (self.uploaded, "nbp-references"),
                             (self.clear_uploads, "nbp-clear-references")):
            widget.add_class(name)
        self.widget = w.VBox([
            self.prompt, w.HBox([self.size, self.aspect, self.count], layout=w.Layout(**WRAP)),
            w.HBox([self.provider, self.model], layout=w.Layout(**WRAP)),
            w.HBox([self.upload, self.uploaded, self.clear_uploads], layout=w.Layout(**WRAP)),
            w.HBox([self.fallback, self.hedge, self.budget], layout=w.Layout(**WRAP)),
            w.HBox([self.go, self.estimate], layout=w.Layout(**WRAP)), self.message,
            self.confirm, w.HTML("<b>Jobs</b> (newest first)"), self.jobs,
            w.HTML("<b>Gallery</b> (newest first)"), self.gallery, self.selection, self.footer],
            layout=w.Layout(width="100%", max_width="100%"))
        self.widget.add_class("nbp-panel")
        self.rows: dict[str, Row] = {}
        self.tiles: dict[str, Tile] = {}  # by the job id of the image
        self.results: dict[str, GenerationResult] = {}
        self.selected: GenerationResult | None = None
        self._pending: tuple | None = None  # a paid click waiting for "Spend anyway"
        self._ticking = False  # only read and written on the UI thread
        # Clicks and edits arrive on the kernel's thread: they only hand work to the UI thread.
        self.go.on_click(lambda _: ui.call(self.click))
        self.confirm_yes.on_click(lambda _: ui.call(self._confirmed, True))
        self.confirm_no.on_click(lambda _: ui.call(self._confirmed, False))
        self.copy_prompt.on_click(lambda _: ui.call(self._copy))
        self.again.on_click(lambda _: ui.call(self.again_click))
        self.upgrade.on_click(lambda _: ui.call(self.upgrade_click))
        self.refine.on_click(lambda _: ui.call(self.refine_click))
        self.upload.observe(lambda _: ui.call(self.take_uploads), names="value")
        self.clear_uploads.on_click(lambda _: ui.call(self._clear_uploads))
        for widget in (self.size, self.model, self.count, self.provider, self.budget):
            widget.observe(lambda _: ui.call(self.refresh_estimate), names="value")
        ui.call(self._refresh_all).result(30)

    # ----- what the widgets ask for -------------------------------------------------------
    def _settings(self, provider: str | None = None, model: str | None = None) -> Settings:
        kw = dict(self.settings_kwargs)
        if provider and provider != "(default)":
            kw["provider"] = provider
        if model:
            kw["model"] = model
        return api.config.resolve(**kw)

    def _options(self, **override) -> Options:
        """What the boxes say, over the configured settings (api fits a configured fallback
        list to the size, as it does for a cell)."""
        boxes = Options(size=self.size.value, aspect=self.aspect.value,
                        images=tuple(str(path) for path in self.references),
                        fallback=self.ladder if self.fallback.value else False,
                        hedge=self.hedge.value, model=self.model.value.strip() or None,
                        provider=None if self.provider.value == "(default)"
                        else self.provider.value)
        return boxes.with_(**override).over(self.configured).with_(
            fallback_is_default=isinstance(self.ladder, str) and self.fallback.value)

    def spent(self) -> tuple[float, float]:
        """(billed, unknown) dollars of this session, as the footer shows them."""
        totals = self._totals()
        return totals["cost_usd"], totals["cost_unknown_usd"]

    def _store(self):
        return session().store(self._settings())

    def _totals(self) -> dict:
        store = self._store()
        return load_history(store, session=store.session).totals()

    def _estimate_for(self, options: Options, count: int):
        settings = self._settings(options.provider, options.model)
        return estimate(session().store(settings), settings.model, options.size or "1K", count)

    def current_estimate(self):
        return self._estimate_for(self._options(), self.count.value)

    # ----- on the UI thread from here on ---------------------------------------------------
    def _refresh_all(self) -> None:
        self.refresh_estimate()
        self.refresh_footer()

    def refresh_estimate(self) -> None:
        try:
            self.estimate.value = html.escape("Next click: " + self.current_estimate().line())
        except ConfigError as exc:
            self.estimate.value = f'<span style="color:#dc2626">{html.escape(exc.one_line())}</span>'

    def refresh_footer(self) -> None:
        totals = self._totals()
        self.footer.value = html.escape(
            f"This session: {display.counted(totals['images'], 'image')}, "
            f"{display.counted(totals['attempts'], 'attempt')}, billed "
            f"${totals['cost_usd']:.3f}, unknown ${totals['cost_unknown_usd']:.3f}")

    # ----- the paid clicks: Generate, Again, Upgrade, all through one guard ----------------
    def click(self) -> list[Job]:
        """Generate (from the form), unless it would pass the budget: then ask first."""
        return self._spend(self.prompt.value, self._options(), self.count.value, None)

    def again_click(self) -> list[Job]:
        """The selected image's prompt and settings once more (through the budget guard)."""
        tile = self._selected_tile()
        if tile is None or "again" in tile.started:  # a quick second click pays nothing
            return []
        row = self.rows.get(tile.result.job_id)
        options = row.options if row else self._options(size=tile.result.requested)
        return self._spend(tile.result.prompt, options, 1, (tile, "again"))

    def upgrade_click(self) -> list[Job]:
        """The selected image's prompt at 4K (offered only below 4K; through the guard)."""
        tile = self._selected_tile()
        if tile is None or "upgrade" in tile.started or not self._can_upgrade(tile.result):
            return []
        return self._spend(tile.result.prompt, self._upgrade_options(tile), 1, (tile, "upgrade"))

    def refine_click(self) -> list[Job]:
        """The picked turn of the selected image's conversation, refined as the box says,
        with the form's options and uploads (through the guard); its image is selected when
        it lands, so the next refine continues from it."""
        tile, turn = self._selected_tile(), self.turns.picked
        if tile is None or "refine" in tile.started:
            return []
        if turn is None:
            self.message.value = _error(f"job {tile.result.job_id} has no recorded conversation "
                                        "turn to refine — Again or a new prompt instead")
            return []
        return self._spend(self.refine_prompt.value, self._options(), 1, (tile, "refine"),
                           parent=turn.job_id)

    def _upgrade_options(self, tile: Tile) -> Options:
        """The image's own settings (the form's, for an image of another session) at 4K."""
        row = self.rows.get(tile.result.job_id)
        options = row.options if row else self._options()
        return options.with_(size="4K")  # a configured fallback list is refitted to 4K

    def _spend(self, prompt: str, options: Options, count: int, source,
               parent: str | None = None) -> list[Job]:
        """The one way money is spent from the panel: check the budget, then submit."""
        self.message.value = ""
        try:
            est = self._estimate_for(options, count)
        except ConfigError as exc:
            self.message.value = _error(exc.one_line())
            return []
        billed, unknown = self.spent()
        warning = budget_warning(self.budget.value or None, billed, unknown, est)
        if warning:
            self._pending = (prompt, options, count, source, parent)
            self.message.value = html.escape(warning + " Spend anyway?")
            self.confirm.layout.display = "flex"
            return []
        return self.submit(prompt, options, count, source, parent)

    def _confirmed(self, yes: bool) -> list[Job]:
        pending, self._pending = self._pending, None
        self.confirm.layout.display = "none"
        self.message.value = ""
        return self.submit(*pending) if yes and pending else []

    def submit(self, prompt: str, options: Options, count: int = 1, source=None,
               parent: str | None = None) -> list[Job]:
        """Start the jobs (no budget check: callers go through _spend); with `parent`, as
        refines of that job (its conversation is read from the ledger here, on this thread)."""
        try:
            if parent is None:
                request, settings, policy = api.prepare_options(prompt, options)
            else:
                request, settings, policy = api.prepare_refine(parent, prompt, options)
        except NbpError as exc:
            self.message.value = _error(exc.one_line())
            return []
        jobs = []
        for _ in range(count):
            job = session().submit(request, settings, policy)
            self._add_row(job, settings, options)
            job.add_listener(self._on_event)
            jobs.append(job)
        ids = ", ".join(job.id for job in jobs)
        if source is None:
            self.message.value = html.escape(f"Started {ids}: at the top of the job list.")
        else:  # the button clicked says so, and waits for its job before it can be paid again
            tile, kind = source
            tile.started[kind] = jobs[0]
            if kind == "refine":
                self.refine_prompt.value = ""
            self._show_selection()
        if not self._ticking:
            self._ticking = True
            ui.Ticker(session().loop, self._tick)
        return jobs

    def _add_row(self, job: Job, settings: Settings, options: Options) -> None:
        import ipywidgets as w
        status = w.HTML(self._row_html(job, settings), layout=w.Layout(min_width="0"))
        cancel = w.Button(description="Cancel", layout=w.Layout(width="80px", flex="0 0 auto"))
        cancel.add_class("nbp-cancel")
        cancel.on_click(lambda _: job.cancel())  # thread-safe; the row changes when it ends
        row = w.HBox([cancel, status])
        row.add_class("nbp-row")
        self.rows[job.id] = Row(job, status, cancel, settings, options)
        self.jobs.children = (row, *self.jobs.children)

    def _row_html(self, job: Job, settings: Settings,
                  result: GenerationResult | None = None) -> str:
        colour = display.COLOURS.get(job.status, "#6b7280")
        if result is not None:
            text = result.caption()
        else:
            text = display.status_text(job, None, settings.time_scale,
                                       settings.provider == "sim")
        return (f'<div class="nbp-row-status" data-job="{job.id}" data-state="{job.status}" '
                f'style="border-left:4px solid {colour}; padding-left:6px; overflow-wrap:anywhere">'
                f'<b style="color:'
                f'{colour}">{display.job_word(job) if result is None else display.state_word(job.status)}'
                f'</b> {job.id} '
                f'{html.escape(short(job.request.prompt, 40))} · {html.escape(text)}</div>')

    # ----- job events: handed over from the engine's loop ----------------------------------
    def _on_event(self, job: Job, event) -> None:
        """On the engine's loop: nothing here but the hand-over."""
        ui.call(self._apply, job, event)

    def _apply(self, job: Job, event) -> None:
        row = self.rows.get(job.id)
        if row is None:
            return
        final = isinstance(event, Finished)
        if final and job.id in self.results:
            return  # told twice that it ended: one row, one tile
        row.status.value = self._row_html(job, row.settings, event.result if final else None)
        if not final:
            return
        row.cancel.layout.display = "none"  # nothing left to cancel; the line gets the room
        self.results[job.id] = event.result
        if event.result.success:
            self._add_to_gallery(event.result)
        follow = None  # a refine of the image still selected: its result is selected next
        for tile in self.tiles.values():  # a button waiting for this job is free again
            for kind, started in list(tile.started.items()):
                if started.id == job.id:
                    del tile.started[kind]
                    if kind == "refine" and tile is self._selected_tile():
                        follow = event.result
        if follow is not None and follow.success:
            self.select(follow)
        elif follow is not None:
            self.message.value = _error(f"Refine {job.id} failed: {follow.error or job.status}")
            if not self.refine_prompt.value.strip():  # the instruction back, to try again
                self.refine_prompt.value = follow.prompt
        self._show_selection()
        self.refresh_footer()
        self.refresh_estimate()

    def _tick(self) -> bool:
        """Elapsed times, about once a second while any job runs; True when none does."""
        running = [row for row in self.rows.values() if not row.job.done()]
        for row in running:
            row.status.value = self._row_html(row.job, row.settings)
        self._ticking = bool(running)
        return not running

    # ----- the gallery ---------------------------------------------------------------------
    def _add_to_gallery(self, result: GenerationResult) -> None:
        import ipywidgets as w
        thumb = preview_jpeg(Path(result.image_path), THUMB)
        image = w.Image(value=thumb, format="jpeg", layout=w.Layout(max_width=f"{THUMB}px"))
        caption = w.HTML(f'<div style="font-size:11px; width:{THUMB}px">'
                         f'{html.escape(result.job_id)} '
                         f'{f"turn {result.turn} · " if result.turn > 1 else ""}'
                         f'{html.escape(short(result.prompt, 60))}<br>'
                         f'{html.escape(result.requested)} → {html.escape(result.resolution or "")}'
                         f' · ${result.cost_usd:.3f}{" · SIMULATED" if result.simulated else ""}</div>')
        pick = w.Button(description="Select", layout=w.Layout(width=f"{THUMB}px"))
        pick.add_class("nbp-select")
        pick.on_click(lambda _: ui.call(self.select, result))
        box = w.VBox([image, caption, pick], layout=w.Layout(border=PLAIN_BORDER, padding="2px"))
        box.add_class("nbp-gallery-item")
        self.tiles[result.job_id] = Tile(result, box, pick)
        # newest first, in the job list's order (when it was asked, not when it landed)
        order = {job_id: i for i, job_id in enumerate(reversed(self.rows))}
        self.gallery.children = tuple(tile.box for tile in sorted(
            self.tiles.values(), key=lambda t: order.get(t.result.job_id, -1)))

    def select(self, result: GenerationResult) -> None:
        previous = self.tiles.get(self.selected.job_id) if self.selected else None
        if previous is not None:
            previous.box.layout.border = PLAIN_BORDER
            previous.box.remove_class("nbp-selected")
            previous.pick.description = "Select"
        self.selected = result
        tile = self.tiles[result.job_id]
        tile.box.layout.border = SELECTED_BORDER
        tile.box.add_class("nbp-selected")
        tile.pick.description = "Selected"
        try:
            exchanges = self._store().conversation(result.job_id)
        except NbpError as exc:  # a damaged turn: no strip, so Refine cannot take the old one
            exchanges = []
            self.message.value = _error(exc.one_line())
        self.turns.show(exchanges)  # picks the last turn

    def _selected_tile(self) -> Tile | None:
        return self.tiles.get(self.selected.job_id) if self.selected else None

    @staticmethod
    def _can_upgrade(result: GenerationResult) -> bool:
        return sizes.rank(result.resolution or result.requested) < sizes.rank("4K")

    def _show_selection(self) -> None:
        """The selected image's caption and buttons; a button whose job runs says so."""
        tile = self._selected_tile()
        if tile is None:
            return
        result = tile.result  # a grounded image keeps its search suggestion beside it
        extras = display.said_html(result.text) + (
            grounding.grounding_html(result.grounding) if result.grounding else "")
        self.selected_info.value = (f'<div style="overflow-wrap:anywhere"><b>Selected</b> '
                                    f'{html.escape(result.caption())}{extras}</div>')
        self.selection.layout.display = "flex"
        refine = tile.started.get("refine")
        self.refine.disabled = refine is not None
        picked = self.turns.picked
        if refine is not None:
            self.refine.description = f"Refine: {refine.id} started"
        elif picked is not None and self.turns.branches:
            self.refine.description = f"Refine turn {picked.number} (new branch)"
        else:
            self.refine.description = f"Refine turn {picked.number}" if picked else "Refine"
        again = tile.started.get("again")
        self.again.disabled = again is not None
        self.again.description = f"Again: {again.id} started" if again else "Again"
        upgrade = tile.started.get("upgrade")
        self.upgrade.layout.display = "" if self._can_upgrade(tile.result) else "none"
        self.upgrade.disabled = upgrade is not None
        if upgrade is not None:
            self.upgrade.description = f"Upgrade: {upgrade.id} started"
        else:
            try:
                cost = self._estimate_for(self._upgrade_options(tile), 1).cost_usd
                self.upgrade.description = f"Upgrade to 4K (~${cost:.2f})"
            except ConfigError:
                self.upgrade.description = "Upgrade to 4K"

    # ----- reference images, uploaded --------------------------------------------------------
    def take_uploads(self) -> None:
        """Save what the upload control holds under NBP_HOME: the form's reference images
        for Generate and Refine until cleared. A file that is no usable image is said at
        once, and left out."""
        self.message.value = ""
        home = self._store().home
        try:
            saved = save_uploads(home, self.upload.value)
        except (OSError, KeyError, TypeError) as exc:
            saved = []
            why = getattr(exc, "strerror", None) or type(exc).__name__
            self.message.value = _error(
                f"the upload could not be saved under {Path(home) / UPLOADS} ({why}) — make "
                f"that folder writable, or give the file's path instead: images=[path]")
        self.references = []
        for path in saved:
            try:
                references.read(path)
            except ConfigError as exc:
                self.message.value = _error(exc.one_line())
            else:
                self.references.append(path)
        names = ", ".join(html.escape(p.name.split("-", 1)[-1]) for p in self.references)
        self.uploaded.value = (f"{len(self.references)} reference image"
                               f"{'s' if len(self.references) != 1 else ''}: {names}"
                               if self.references else "")

    def _clear_uploads(self) -> None:
        self.upload.value = ()  # observed: take_uploads empties the list

    def _copy(self) -> None:
        if self.selected:
            self.prompt.value = self.selected.prompt


def _error(text: str) -> str:
    return f'<span style="color:#dc2626">{html.escape(text)}</span>'


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
