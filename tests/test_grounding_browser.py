"""In a real Chromium: the search suggestion shows, as Google drew it, and its script never runs."""

from __future__ import annotations

import nbp_jupyter as nbp
from nbp_jupyter import display, grounding
from tests.lab import browser_page, require_browser

RAN = "SIMULATED entry point script ran"  # what the simulator's script would set


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
