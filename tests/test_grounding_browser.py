"""In a real Chromium: the search suggestion shows, as Google drew it, and its script never runs;
in JupyterLab it shows in a saved notebook opened untrusted too."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote_plus

import nbformat
from nbformat.sign import NotebookNotary

import nbp_jupyter as nbp
from nbp_jupyter import display, grounding
from nbp_jupyter.sim import grounding as sim_grounding
from tests.lab import TOKEN, browser_page, jupyter_lab, require_browser
from tests.test_grounding import PROMPT, saved_grounded_notebook

RAN = "SIMULATED entry point script ran"  # what the simulator's script would set
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "grounding"


def _frame_state(page_html: str) -> tuple[str, list[str]]:
    """(the frame's document title, the chip texts it shows)."""
    with browser_page(900, 600) as page:
        page.set_content(page_html)
        frame = page.frame_locator("iframe.nbp-search-entry")
        chips = frame.locator("a.chip").all_inner_texts()
        title = page.frames[1].title()
    return title, chips


def test_the_entry_points_script_never_runs_but_its_chips_show(home, simulator):
    """Google's HTML would run scripts in the notebook page, or not show at all."""
    require_browser()
    result = nbp.generate("a grounded poster of Lisbon trams", provider="gemini",
                          base_url=simulator.url, api_key="k", search=True, fallback=False)
    page_html = display.result_html(result)
    title, chips = _frame_state(page_html)
    assert chips and chips[0] == "a grounded poster of Lisbon trams"
    assert title != RAN
    # The same frame with scripts allowed does run it: the check above can see a script run.
    title, _ = _frame_state(page_html.replace(grounding.SANDBOX, "allow-scripts"))
    assert title == RAN


def _output_in_lab(page, url: str, name: str) -> dict:
    """Open a saved notebook in JupyterLab without running it: what its grounded output shows."""
    page.goto(f"{url}/lab/tree/{name}?token={TOKEN}")
    page.wait_for_function("(name) => { const w = window.jupyterapp"
                           " && window.jupyterapp.shell.currentWidget;"
                           " return !!w && !!w.context && w.context.path === name; }",
                           arg=name, timeout=60_000)
    # the workspace may restore the other notebook's tab too: look in this one's only
    tab = "#" + page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    page.wait_for_selector(f"{tab} .jp-OutputArea-output .nbp-result", timeout=60_000)
    time.sleep(1)  # the frame's srcdoc loads after the output is attached
    output = page.locator(f"{tab} .jp-OutputArea-output:has(.nbp-result)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    output.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    links = output.locator(".nbp-search-links a")
    return {
        "trusted": page.evaluate("() => window.jupyterapp.shell.currentWidget"
                                 ".context.model.cells.get(1).trusted"),
        "frames": output.locator("iframe.nbp-search-entry").count(),
        "chips": (output.frame_locator("iframe.nbp-search-entry")
                  .locator("a.chip").all_inner_texts()
                  if output.locator("iframe.nbp-search-entry").count() else []),
        "links": [(links.nth(i).inner_text(), links.nth(i).get_attribute("href"))
                  for i in range(links.count()) if links.nth(i).is_visible()],
        "text": output.inner_text(),
        "title": page.title(),
    }


def test_a_saved_notebook_opened_untrusted_still_shows_the_search_suggestion(tmp_path,
                                                                             monkeypatch):
    """Reopened without running it, a grounded image lost Google's search suggestion
    (JupyterLab's sanitizer drops the frame), which Google's terms require beside it."""
    require_browser()
    saved = saved_grounded_notebook(tmp_path, monkeypatch)
    # A signed copy opens trusted, as after Run All or "Trust Notebook".
    data_dir = tmp_path / "jupyter-data"
    data_dir.mkdir()
    notebook = nbformat.read(saved, as_version=4)
    notebook.metadata["title"] = "trusted copy"  # trust goes by content: the same would trust both
    NotebookNotary(data_dir=str(data_dir)).sign(notebook)
    nbformat.write(notebook, tmp_path / "trusted.ipynb")
    asked = [q for q in sim_grounding.queries(PROMPT) if q.strip()]
    wanted = [(q, f"https://www.google.com/search?q={quote_plus(q)}") for q in asked]
    with jupyter_lab(tmp_path, {"JUPYTER_DATA_DIR": str(data_dir)}) as url, \
            browser_page(1200, 900) as page:
        untrusted = _output_in_lab(page, url, saved.name)
        trusted = _output_in_lab(page, url, "trusted.ipynb")
    assert untrusted["trusted"] is False and trusted["trusted"] is True
    # Untrusted: the sanitizer drops the frame (the finding); the queries stay, as plain links.
    assert untrusted["frames"] == 0
    assert untrusted["links"] == wanted
    assert "display:none" not in untrusted["text"]  # the dropped <style> leaves no text behind
    # Trusted: Google's own chips in the frame, and the plain links hidden (shown once).
    assert trusted["frames"] == 1 and trusted["chips"] == asked
    assert trusted["links"] == []
    assert RAN not in (untrusted["title"], trusted["title"])
