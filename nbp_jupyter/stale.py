"""Status lines drawn by a kernel that is gone, brought up to date where the page shows them.

A front end forgets display ids when its kernel restarts (JupyterLab clears them with the rest
of the kernel's state), so no update from a new kernel reaches a status line the old one drew:
it would read 'running 4K · attempt 1 · 0:04 elapsed' forever. When the extension loads, and
with %nbp_jobs and %nbp_history, we send what became of recent jobs of other sessions, with a
small script that rewrites their status lines in the page (front ends run scripts only in
trusted outputs, which a cell run in this session is), and a line naming the jobs this kernel
found cut off, for any front end.
"""

from __future__ import annotations

import html
import json
import time

from . import display
from .records import ran_for_text
from .store import LEDGER_NAME, Store
from .timefmt import short

RECENT = 50  # jobs of other sessions sent each time: a stale line is a recent one
_STARTED = time.time()  # jobs closed by recovery after this were found by this process

SCRIPT = """<script>(function () {
  var states = %s;
  document.querySelectorAll(".nbp-status[data-job]").forEach(function (line) {
    var state = states[line.getAttribute("data-job")];
    if (!state) return;
    line.setAttribute("data-state", state.status);
    line.style.borderLeftColor = state.colour;
    var word = line.querySelector("b");
    word.textContent = state.word;
    word.style.color = state.colour;
    line.querySelector(".nbp-status-text").textContent = state.text;
  });
})();</script>"""


def final_text(row: dict, scale: float) -> str:
    """What became of a job, in the status line's words, from its ledger row."""
    cost = f"${row['cost_usd'] or 0:.3f}"
    if row["cost_unknown_usd"]:
        cost += f" + up to ${row['cost_unknown_usd']:.3f} unknown"
    parts = [f"{row['requested']} → {row['resolution'] or 'nothing'}",
             f"ran {ran_for_text(row, scale)}", cost]
    if row["status"] == "done":
        parts.append(f"image kept: %nbp_show {row['id']}")
    elif row["error"]:
        parts.append(row["error"])
    parts.append("updated after a kernel restart")
    return " · ".join(parts)


def update_html(store: Store, scale: float) -> str:
    """The script (and, for jobs this process found cut off, a visible line); '' if none."""
    rows = [r for r in store.jobs(limit=RECENT * 4)
            if r["session"] != store.session and r["status"] != "running"][:RECENT]
    if not rows:
        return ""
    states = {r["id"]: {"status": r["status"], "word": display.state_word(r["status"]),
                        "colour": display.COLOURS.get(r["status"], "#6b7280"),
                        "text": final_text(r, scale)} for r in rows}
    # JSON in a script: no '<', '>' or '&' may reach the HTML parser, whatever a prompt says
    payload = json.dumps(states).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    script = SCRIPT % payload
    found = [r for r in rows if r["elapsed_s"] is None and (r["finished"] or 0) >= _STARTED]
    if not found:
        return script
    items = "; ".join(f"{r['id']} {display.state_word(r['status'])} "
                      f"({short(r['prompt'], 30)}: {final_text(r, scale)})" for r in found)
    return (f'<div class="nbp-stale {display.NO_MATH}" style="font-size:12px; color:#6b7280">'
            f"{html.escape(f'Cut off when the previous kernel stopped: {items}')}</div>{script}")


def announce(settings) -> None:
    """Display the update in the current cell, if a ledger exists at these settings' home."""
    from IPython.display import HTML, display as show

    from .jobs import session

    if not (settings.home / LEDGER_NAME).exists():
        return  # no ledger, nothing stale (and no folder made just by loading)
    text = update_html(session().store(settings), settings.time_scale)
    if text:
        show(HTML(text))
