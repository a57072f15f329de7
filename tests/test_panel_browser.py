"""The panel in a real JupyterLab in headless Chromium: click, watch jobs tick, see images,
cancel, every paid click guarded, at two widths in both themes; and a status line left by a
restarted kernel brought up to date."""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from .lab import (TOKEN, browser_page, jupyter_lab, lab_command, overflowing, require_browser,
                  restart_kernel, wait_for_idle_kernel)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "panel"
DOCS = ROOT / "docs"  # the README's screenshots, refreshed by this test
WIDE, NARROW = 1400, 900


@contextmanager
def notebook_in_lab(folder: Path, name: str, sources: list[str], env: dict, width: int,
                    height: int):
    """Write a notebook of these cells, open it in JupyterLab, wait for its kernel; yields
    the page."""
    require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    notebook = new_notebook(cells=[new_code_cell(source) for source in sources],
                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                     "display_name": "Python 3"}})
    nbformat.write(notebook, folder / name)
    with jupyter_lab(folder, env) as url, browser_page(width, height) as page:
        page.goto(f"{url}/lab/tree/{name}?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook", timeout=60_000)
        wait_for_idle_kernel(page)
        time.sleep(1)
        yield page


def run_cell(page, index: int) -> None:
    page.locator(".jp-Cell").nth(index).click()
    page.keyboard.press("Shift+Enter")


def shoot(page, name: str, docs: bool = False) -> None:
    """A screenshot in test-artifacts/; with NBP_REFRESH_SCREENSHOTS=1, the README's copy in
    docs/ too (so an ordinary run leaves the checkout as it was)."""
    page.screenshot(path=str(ARTIFACTS / name))
    if docs and os.environ.get("NBP_REFRESH_SCREENSHOTS"):
        page.screenshot(path=str(DOCS / name))


def test_panel_in_jupyterlab(tmp_path, make_sim):
    """Two Generate clicks run side by side, tick, land in the gallery; a third is cancelled;
    Again and Upgrade ask past the budget and say what they started; the panel fits 900 px
    in both themes; a status line from before a kernel restart says what became of its job."""
    server = make_sim(profile="ideal", time_scale=0.6)  # a 1K image takes ~3 s
    env = {"NBP_PROVIDER": "gemini", "NBP_BASE_URL": server.url, "NBP_API_KEY": "browser-key",
           "NBP_TIME_SCALE": "0.6", "NBP_HOME": str(tmp_path / "home"), "NBP_WAIT": "never"}
    cells = ["%load_ext nbp_jupyter", "%nbp_panel", "%nbp_history",
             "%%nbp --size 4K\na lighthouse cut off by a restart"]
    with notebook_in_lab(tmp_path, "panel.ipynb", cells, env, WIDE, 1100) as page:
        run_cell(page, 0)
        run_cell(page, 1)
        prompt = page.locator(".nbp-prompt textarea")
        prompt.wait_for(timeout=60_000)
        generate = page.locator("button.nbp-generate")

        prompt.fill("a red kite over the moor")
        generate.click()
        page.wait_for_selector(".nbp-message:has-text('Started')")  # feedback by the button
        prompt.fill("a blue heron in the reeds")
        generate.click()
        rows = page.locator(".nbp-row-status")
        page.wait_for_function("document.querySelectorAll('.nbp-row-status').length == 2")
        first_texts = rows.all_inner_texts()
        time.sleep(1.6)
        ticked = rows.all_inner_texts()
        shoot(page, "1-two-jobs-running.png")
        assert any(a != b for a, b in zip(first_texts, ticked)), (first_texts, ticked)
        assert "heron" in ticked[0] and "kite" in ticked[1]  # newest first

        page.wait_for_function(
            "document.querySelectorAll('.nbp-gallery-item img').length == 2", timeout=60_000)
        shoot(page, "2-gallery.png")
        assert page.locator("[data-state='done']").count() == 2
        assert all("1K → 1K" in t for t in page.locator("[data-state='done']").all_inner_texts())
        tiles = page.locator(".nbp-gallery-item").all_inner_texts()
        assert "heron" in tiles[0] and "kite" in tiles[1]  # the job list's order

        server.set_script("hang")
        prompt.fill("this one never finishes")
        generate.click()
        page.wait_for_function("document.querySelectorAll('.nbp-row-status').length == 3")
        page.wait_for_selector(".nbp-row-status[data-state='running']", timeout=30_000)
        page.locator(".nbp-row").first.locator("button.nbp-cancel").click()
        page.wait_for_selector("[data-state='cancelled']", timeout=30_000)
        footer = page.locator(".nbp-footer").inner_text()
        assert "2 images" in footer and "unknown $" in footer
        billed = re.search(r"billed \$[0-9.]+", footer).group()  # what the footer shows
        assert page.locator(".nbp-gallery-item img").count() == 2
        page.wait_for_function(  # a finished row offers no Cancel
            "[...document.querySelectorAll('.nbp-row button.nbp-cancel')]"
            ".every(b => getComputedStyle(b).display == 'none')")

        # select: the tile is highlighted; Upgrade names its cost
        page.locator(".nbp-gallery-item").first.locator("button.nbp-select").click()
        page.wait_for_selector(".nbp-gallery-item.nbp-selected")
        assert page.locator(".nbp-gallery-item.nbp-selected").count() == 1
        page.wait_for_selector("button.nbp-upgrade:has-text('~$0.24')")

        # past the budget every paid button asks first
        page.locator(".nbp-budget input").fill("0.05")
        page.locator(".nbp-budget input").press("Enter")
        for button in ("button.nbp-again", "button.nbp-upgrade", "button.nbp-generate"):
            page.locator(button).click()
            page.wait_for_selector("button.nbp-confirm", state="visible")
            message = page.locator(".nbp-message").inner_text()
            assert "budget" in message and billed in message, (button, message, billed)
            page.locator("button.nbp-confirm-no").click()
            page.wait_for_selector("button.nbp-confirm", state="hidden")
        assert page.locator(".nbp-row-status").count() == 3  # nothing was spent

        # Again with room in the budget: the button says which job it started, and waits
        page.locator(".nbp-budget input").fill("0")
        page.locator(".nbp-budget input").press("Enter")
        page.locator("button.nbp-again").click()
        page.wait_for_selector("button.nbp-again:has-text('started')")
        assert page.locator("button.nbp-again").is_disabled()
        page.locator(".nbp-panel").scroll_into_view_if_needed()
        shoot(page, "panel.png", docs=True)
        page.wait_for_selector("button.nbp-again:text-is('Again')", timeout=60_000)

        # the panel fits a 900 px window with the file browser open, in both themes
        for theme, suffix in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
            lab_command(page, "apputils:change-theme", {"theme": theme})
            page.wait_for_function(f"document.body.dataset.jpThemeName == {theme!r}")
            for width in (WIDE, NARROW):
                page.set_viewport_size({"width": width, "height": 1100})
                time.sleep(1)
                page.locator(".nbp-panel").scroll_into_view_if_needed()
                assert overflowing(page, ".nbp-panel") == [], (theme, width)
                shoot(page, f"panel-{width}-{suffix}.png", docs=True)
        lab_command(page, "apputils:change-theme", {"theme": "JupyterLab Light"})
        page.set_viewport_size({"width": WIDE, "height": 1100})

        # Dollar amounts in HTML outputs stay text: two of them in one element ("billed $0.269
        # · unknown $0.134") were typeset by MathJax as a formula.
        billed = re.search(r"billed \$[0-9.]+", page.locator(".nbp-footer").inner_text()).group()
        run_cell(page, 2)
        page.wait_for_selector(".nbp-table", timeout=30_000)
        time.sleep(3)  # MathJax loads and typesets asynchronously
        summary = page.locator(".nbp-table").locator("xpath=preceding-sibling::p[1]").inner_text()
        assert billed in summary and "unknown $" in summary, (summary, billed)
        assert page.locator("mjx-container").count() == 0

        # a status line drawn by a kernel that is then restarted says what became of its job
        server.set_script("hang")
        run_cell(page, 3)
        line = page.locator(".nbp-status").last
        page.wait_for_selector(".nbp-status[data-state='running']", timeout=30_000)
        restart_kernel(page)
        time.sleep(3)
        wait_for_idle_kernel(page)
        run_cell(page, 0)
        page.wait_for_selector(".nbp-status[data-state='interrupted']", timeout=30_000)
        text = line.inner_text()
        assert "interrupted" in text and "unknown" in text and "kernel restart" in text, text
        line.scroll_into_view_if_needed()
        shoot(page, "status-after-restart.png", docs=True)


def test_status_lines_then_images_in_jupyterlab(tmp_path):
    """Three jobs tick in their cells while another cell runs, then each cell shows its image
    as an image output (width from its metadata) above its caption."""
    env = {"NBP_HOME": str(tmp_path / "nbp-output"), "NBP_TIME_SCALE": "0.5",
           "NBP_SIM_PROFILE": "ideal", "NBP_WAIT": "never"}  # the built-in simulator, no key
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "NBP_API_KEY",
                 "NBP_PROVIDER", "NBP_BASE_URL"):
        env[name] = ""
    cells = ["%load_ext nbp_jupyter",
             "%%nbp --size 4K --aspect 16:9 --out a\nA harbour at night, lanterns on the water",
             "%%nbp --size 2K -n 2 --out b\nA red kite over the moor", "1 + 1"]
    with notebook_in_lab(tmp_path, "look.ipynb", cells, env, 1300, 1000) as page:
        for index in range(4):
            run_cell(page, index)
        page.wait_for_function("document.querySelectorAll('.nbp-status').length == 3",
                               timeout=30_000)
        page.wait_for_selector(".jp-Cell >> nth=3 >> .jp-OutputArea-output:has-text('2')")
        page.wait_for_function(  # all three ticking
            "[...document.querySelectorAll('.nbp-status')].every(e => /elapsed/.test(e.innerText))")
        shoot(page, "status-line.png", docs=True)
        assert page.locator(".nbp-status").count() == 3  # the shot shows them running
        page.wait_for_function("document.querySelectorAll('.nbp-result').length == 3",
                               timeout=120_000)
        page.wait_for_function("document.querySelectorAll('.jp-RenderedImage img').length == 3")
        widths = page.eval_on_selector_all(".jp-RenderedImage img", "els => els.map(e => e.width)")
        assert widths == [512, 512, 512], widths  # a 1024 px preview shown at half, sharp on HiDPI
        assert page.locator(".nbp-status").count() == 0
        captions = page.locator(".nbp-result").all_inner_texts()
        assert "4K → 4K" in captions[0] and all("SIMULATED" in c for c in captions)
        page.locator(".jp-Cell").nth(1).scroll_into_view_if_needed()
        shoot(page, "results.png", docs=True)


def test_refine_in_jupyterlab(tmp_path, make_sim):
    """In the panel, an image refined twice from its Refine box (the second time with an
    uploaded reference image) shows a strip of three turns, the newest picked; picking turn 1
    offers a new branch."""
    from PIL import Image

    server = make_sim(profile="ideal", time_scale=0.05)
    env = {"NBP_PROVIDER": "gemini", "NBP_BASE_URL": server.url, "NBP_API_KEY": "browser-key",
           "NBP_TIME_SCALE": "0.05", "NBP_HOME": str(tmp_path / "home"), "NBP_WAIT": "never"}
    logo = tmp_path / "logo.png"
    Image.new("RGB", (96, 96), "#e11d48").save(logo)
    with notebook_in_lab(tmp_path, "refine.ipynb", ["%load_ext nbp_jupyter", "%nbp_panel"],
                         env, WIDE, 1100) as page:
        run_cell(page, 0)
        run_cell(page, 1)
        prompt = page.locator(".nbp-prompt textarea")
        prompt.wait_for(timeout=60_000)
        prompt.fill("a lighthouse on a cliff at dusk")
        page.locator("button.nbp-generate").click()
        page.wait_for_selector(".nbp-gallery-item img", timeout=60_000)
        page.locator(".nbp-gallery-item").first.locator("button.nbp-select").click()
        page.wait_for_selector(".nbp-turn-1.nbp-turn-picked")
        refine = page.locator(".nbp-refine-prompt input")
        steps = [("make the sky stormy", None), ("put this red flag on the tower", logo)]
        for number, (text, upload) in enumerate(steps, start=2):
            if upload is not None:
                with page.expect_file_chooser() as chooser:  # the control's own dialog
                    page.locator(".nbp-upload").click()
                chooser.value.set_files(str(upload))
                page.wait_for_selector(".nbp-references:has-text('1 reference image')")
            refine.fill(text)
            page.locator("button.nbp-refine").click()
            page.wait_for_selector(f".nbp-turn-{number}.nbp-turn-picked", timeout=60_000)
        # a box's children are drawn after the box itself: wait for them, then read them
        for selector in (".nbp-turn img", ".nbp-gallery-item img"):
            page.wait_for_function(f"document.querySelectorAll('{selector}').length >= 3")
        page.wait_for_selector(".nbp-turn-3:has-text('red flag')")
        page.wait_for_selector(".nbp-selection:has-text('turn 3 · refines')")
        assert page.locator(".nbp-turn").count() == 3 and page.locator(".nbp-turn img").count() == 3
        labels = page.locator(".nbp-turn").all_inner_texts()
        assert "turn 1" in labels[0] and "stormy" in labels[1] and "red flag" in labels[2]
        assert page.locator(".nbp-gallery-item img").count() == 3
        page.wait_for_selector("button.nbp-refine:text-is('Refine turn 3')")
        assert overflowing(page, ".nbp-panel") == []
        assert "+ 1 reference" in labels[2] and "reference" not in labels[1]
        lab_command(page, "application:toggle-left-area")  # the panel gets the window's width
        time.sleep(0.5)
        page.evaluate("document.querySelector('.nbp-selection').scrollIntoView({block: 'end'})")
        time.sleep(0.5)
        shoot(page, "panel-refine.png", docs=True)
        page.locator(".nbp-turn-1 button.nbp-turn-pick").click()
        page.wait_for_selector("button.nbp-refine:has-text('Refine turn 1 (new branch)')")
        assert "(1)" in page.locator(".nbp-upload").inner_text()
        page.locator("button.nbp-clear-references").click()  # the control forgets it too
        page.wait_for_function("!document.querySelector('.nbp-upload').innerText.includes('(1)')")
        assert page.locator(".nbp-references").inner_text().strip() == ""
