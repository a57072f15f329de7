"""The panel in a real JupyterLab in headless Chromium: click, watch jobs tick, see images, cancel."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from .lab import TOKEN, browser_page, jupyter_lab, require_browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "panel"


def test_panel_in_jupyterlab(tmp_path, make_sim):
    """Two Generate clicks run side by side, tick, land in the gallery; a third is cancelled."""
    require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = make_sim(profile="ideal", time_scale=0.6)  # a 1K image takes ~3 s
    notebook = new_notebook(cells=[new_code_cell("%load_ext nbp_jupyter"),
                                   new_code_cell("%nbp_panel"),
                                   new_code_cell("%nbp_history")],
                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                     "display_name": "Python 3"}})
    nbformat.write(notebook, tmp_path / "panel.ipynb")
    env = {"NBP_PROVIDER": "gemini", "NBP_BASE_URL": server.url, "NBP_API_KEY": "browser-key",
           "NBP_TIME_SCALE": "0.6", "NBP_HOME": str(tmp_path / "home"), "NBP_WAIT": "never"}
    with jupyter_lab(tmp_path, env) as url, browser_page() as page:
        page.goto(f"{url}/lab/tree/panel.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                               ".jp-KernelStatus", timeout=60_000)
        time.sleep(2)
        page.get_by_role("menuitem", name="Run").click()
        page.get_by_text("Run All Cells", exact=True).click()
        prompt = page.locator(".nbp-prompt textarea")
        prompt.wait_for(timeout=60_000)
        generate = page.locator("button.nbp-generate")

        prompt.fill("a red kite over the moor")
        generate.click()
        prompt.fill("a blue heron in the reeds")
        generate.click()
        rows = page.locator(".nbp-row-status")
        page.wait_for_function("document.querySelectorAll('.nbp-row-status').length == 2")
        first_texts = rows.all_inner_texts()
        time.sleep(1.6)
        ticked = rows.all_inner_texts()
        page.screenshot(path=str(ARTIFACTS / "1-two-jobs-running.png"))
        assert any(a != b for a, b in zip(first_texts, ticked)), (first_texts, ticked)
        assert any("kite" in t for t in ticked) and any("heron" in t for t in ticked)

        page.wait_for_function(
            "document.querySelectorAll('.nbp-gallery-item img').length == 2", timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "2-gallery.png"))
        assert page.locator("[data-state='done']").count() == 2
        assert all("1K → 1K" in t for t in page.locator("[data-state='done']").all_inner_texts())

        server.set_script("hang")
        prompt.fill("this one never finishes")
        generate.click()
        page.wait_for_function("document.querySelectorAll('.nbp-row-status').length == 3")
        page.wait_for_selector("[data-state='running']", timeout=30_000)
        page.locator(".nbp-row").first.locator("button.nbp-cancel").click()
        page.wait_for_selector("[data-state='cancelled']", timeout=30_000)
        page.locator(".nbp-footer").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "3-cancelled.png"), full_page=True)
        footer = page.locator(".nbp-footer").inner_text()
        assert "2 images" in footer and "unknown $" in footer
        assert page.locator(".nbp-gallery-item img").count() == 2

        # Dollar amounts in HTML outputs stay text: two of them in one element ("billed $0.269
        # · unknown $0.134") were typeset by MathJax as a formula.
        page.locator(".jp-Cell").nth(2).click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_selector(".nbp-table", timeout=30_000)
        time.sleep(3)  # MathJax loads and typesets asynchronously
        summary = page.locator(".nbp-table").locator("xpath=preceding-sibling::p[1]").inner_text()
        assert "billed $0.269" in summary and "unknown $0.134" in summary, summary
        assert page.locator("mjx-container").count() == 0
