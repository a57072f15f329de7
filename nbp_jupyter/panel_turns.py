"""The panel's refine area: the selected image's conversation as a strip of its turns, any
of which can be picked to refine (an earlier one starts a new branch), and reference images
uploaded from the browser, saved under NBP_HOME so that the ledger can point at a file.

Everything here runs on the UI thread (ui.py): the ledger read, the thumbnails, the files.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from . import ui
from .preview import preview_jpeg
from .timefmt import short
from .turns import Exchange

TURN_THUMB = 112
UPLOADS = "references"  # under NBP_HOME, beside images/
PICKED_BORDER, PLAIN_BORDER = "2px solid #2563eb", "2px solid transparent"


class TurnStrip:
    """The turns of one conversation, first turn first; one of them is picked to refine."""

    def __init__(self, on_pick: Callable[[], None]):
        import ipywidgets as w

        self.box = w.HBox(layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
        self.box.add_class("nbp-turns")
        self.exchanges: list[Exchange] = []
        self.picked: Exchange | None = None
        self._cards: dict[str, tuple[object, object]] = {}  # job id -> (card, button)
        self._thumbs: dict[str, bytes] = {}  # image path -> JPEG, files do not change
        self._on_pick = on_pick

    def show(self, exchanges: list[Exchange]) -> None:
        """Draw this conversation; its last turn (the selected image) is picked."""
        self.exchanges = list(exchanges)
        for card, _ in self._cards.values():  # a widget lives in the kernel until closed
            for widget in (*card.children, card):
                _close(widget)
        self._cards = {e.job_id: self._card(e) for e in self.exchanges}
        self.box.children = tuple(card for card, _ in self._cards.values())
        self.pick(self.exchanges[-1].job_id if self.exchanges else None)

    def pick(self, job_id: str | None) -> None:
        self.picked = next((e for e in self.exchanges if e.job_id == job_id), None)
        for key, (card, button) in self._cards.items():
            mine = key == job_id
            card.layout.border = PICKED_BORDER if mine else PLAIN_BORDER
            (card.add_class if mine else card.remove_class)("nbp-turn-picked")
            button.description = "Refining this" if mine else "Refine this"
        self._on_pick()

    @property
    def branches(self) -> bool:
        """True when the picked turn is not the last: a refine of it starts a new branch."""
        return self.picked is not None and self.picked is not self.exchanges[-1]

    def _card(self, exchange: Exchange):
        import ipywidgets as w

        thumb = self._thumb(exchange.image_path)
        picture = (w.Image(value=thumb, format="jpeg",
                           layout=w.Layout(max_width=f"{TURN_THUMB}px"))
                   if thumb else w.HTML('<div style="font-size:11px; color:#dc2626">'
                                        'image file missing</div>'))
        refs = len(exchange.references)
        with_refs = f" <i>+ {refs} reference{'s' if refs > 1 else ''}</i>" if refs else ""
        label = w.HTML(f'<div style="font-size:11px; line-height:1.35; width:{TURN_THUMB}px; '
                       f'overflow-wrap:anywhere"><b>turn {exchange.number}</b> '
                       f'{html.escape(short(exchange.prompt, 50))}{with_refs}</div>')
        button = w.Button(layout=w.Layout(width=f"{TURN_THUMB}px"),
                          tooltip="refine this turn; an earlier one starts a new branch")
        button.add_class("nbp-turn-pick")
        button.on_click(lambda _: ui.call(self.pick, exchange.job_id))
        card = w.VBox([picture, label, button],
                      layout=w.Layout(border=PLAIN_BORDER, padding="2px", margin="0 4px 4px 0"))
        card.add_class("nbp-turn")
        card.add_class(f"nbp-turn-{exchange.number}")
        return card, button

    def _thumb(self, path: str | None) -> bytes | None:
        if not path or not Path(path).is_file():  # gone since it was cached: say so
            return None
        if path not in self._thumbs:
            try:
                self._thumbs[path] = preview_jpeg(Path(path), TURN_THUMB)
            except OSError:  # a damaged turn: the strip says so, a refine of it says why
                return None
        return self._thumbs[path]


def _close(widget) -> None:
    """Close a widget with the layout and style widgets it made for itself."""
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None), widget):
        if part is not None:
            part.close()


def save_uploads(home: Path, files: Iterable[dict]) -> list[Path]:
    """Each uploaded file (ipywidgets.FileUpload's value) saved under home/references, named
    by a hash of its bytes and its own name: the ledger keeps the path, a refine reads the
    file again later, and the same upload twice is one file."""
    folder = Path(home) / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for upload in files:
        data = bytes(upload["content"])
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(upload.get("name") or "upload").name)
        path = folder / f"{hashlib.sha256(data).hexdigest()[:12]}-{name[-60:]}"
        if not path.exists():
            path.write_bytes(data)
        saved.append(path)
    return saved
