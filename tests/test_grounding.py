"""Grounding with Google Search: the tool on the wire, its price in the ledger, and its
search suggestion shown (never run) beside the image, live and in saved notebooks."""

from __future__ import annotations

import html
import json
import re
import time

import nbformat
import pytest
from nbclient import NotebookClient

import nbp_jupyter as nbp
from nbp_jupyter import display, grounding, history
from nbp_jupyter.errors import ConfigError
from nbp_jupyter.facts import SEARCH_QUERY_USD
from nbp_jupyter.providers import gemini
from nbp_jupyter.sim.wire import SIM_TEXT
from tests.test_notebooks import keyless

PROMPT = "the Eiffel tower at dusk as a travel poster"


def _run(server, **kw):
    return nbp.generate(PROMPT, provider="gemini", base_url=server.url, api_key="k",
                        fallback=False, **kw)


def test_search_adds_the_google_search_tool_on_the_gemini_wire(home):
    """search=True would be dropped and the image made from the model's memory alone."""
    request, _, _ = nbp.api.prepare(PROMPT, search=True)
    body = json.loads(gemini.build(request, "1K", "m", "http://127.0.0.1:1", "k").content)
    assert body["tools"] == [{"google_search": {}}]
    plain, _, _ = nbp.api.prepare(PROMPT)
    assert "tools" not in json.loads(gemini.build(plain, "1K", "m", "http://x", "k").content)


@pytest.mark.parametrize("provider", ["openai", "chat"])
def test_search_on_a_wire_without_the_tool_is_a_one_line_error(home, simulator, provider):
    """The search would be silently dropped by a gateway and the user think it happened."""
    with pytest.raises(ConfigError, match="needs the Gemini wire") as caught:
        nbp.submit(PROMPT, provider=provider, base_url=simulator.url, api_key="k", search=True)
    assert "\n" not in caught.value.one_line()
    assert simulator.app.log == []


def test_search_queries_are_priced_into_the_ledger(home, simulator):
    """Searches are billed per query; a cost without them would understate the bill."""
    plain = _run(simulator)
    grounded = _run(simulator, search=True)
    assert plain.grounding is None and grounded.grounding is not None
    queries = grounded.grounding.queries
    billed = sum(1 for q in queries if q.strip())
    assert 0 < billed < len(queries)  # the simulator lists an empty query: not billed
    assert grounded.cost_usd == pytest.approx(plain.cost_usd + billed * SEARCH_QUERY_USD)
    record = next(r for r in history() if r["id"] == grounded.job_id)
    assert record["attempts"][0]["search_queries"] == billed
    assert record["cost_usd"] == pytest.approx(grounded.cost_usd)
    assert history().totals()["search_queries"] == billed
    assert grounding.Grounding.from_json(record["grounding"]) == grounded.grounding


def test_the_models_text_is_kept_in_the_ledger_and_shown_escaped(home, simulator):
    """The model's words with the image would be lost, or injected as HTML."""
    result = _run(simulator)
    assert result.text == SIM_TEXT
    record = next(r for r in history() if r["id"] == result.job_id)
    assert record["text"] == SIM_TEXT
    assert SIM_TEXT in display.result_html(nbp.records.result_from_record(record))
    long = "<img src=x onerror=alert(1)> " + "a long explanation " * 30
    shown = display.said_html(long)
    assert shown.startswith("<details>") and "<img" not in shown and "&lt;img" in shown
    assert "<details>" not in display.said_html("short words")


def test_the_search_suggestion_is_sandboxed_and_the_links_are_safe(home, simulator):
    """Google's HTML would run its scripts in the notebook, or a javascript: link be clickable."""
    result = _run(simulator, search=True)
    page = display.result_html(result)
    assert "<script" not in page.lower()  # the entry point's script is inert text in srcdoc
    frames = re.findall(r"<iframe[^>]*>", page)
    assert len(frames) == 1
    sandbox = re.search(r'sandbox="([^"]*)"', frames[0]).group(1).split()
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', frames[0]).group(1))
    assert result.grounding.entry_point in srcdoc  # shown unmodified, as the terms ask
    hrefs = re.findall(r'<a href="([^"]*)"', page)
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs)
    assert "javascript:" not in page
    assert "&lt;b&gt;simulated&lt;/b&gt;" in page  # titles are text, not markup
    assert "example.com" in display.result_text(result)


def saved_grounded_notebook(folder, monkeypatch):
    """Run `%%nbp --search` in a real kernel (keyless simulator) and save it: its path."""
    keyless(folder, monkeypatch, profile="ideal")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("%load_ext nbp_jupyter"),
        nbformat.v4.new_code_cell(f"%%nbp --search --wait\n{PROMPT}"),
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute()
    nbformat.write(nb, folder / "grounded.ipynb")
    return folder / "grounded.ipynb"


def test_grounding_is_shown_in_a_saved_notebook(tmp_path, monkeypatch):
    """A grounded image saved without its search suggestion breaks Google's terms, and a
    saved one with a live script would run it on every open."""
    saved = nbformat.read(saved_grounded_notebook(tmp_path, monkeypatch), as_version=4)
    outs = saved.cells[1].outputs
    assert not [o for o in outs if o.output_type == "error"]
    page = "".join(o.get("data", {}).get("text/html", "") for o in outs)
    assert 'class="nbp-result ' in page
    assert page.count("<iframe") == 1 and "google.com/search" in html.unescape(page)
    assert 'href="https://example.com/sim/source-1"' in page
    assert "<script" not in page.lower()
    assert SIM_TEXT in page  # the model's words, under the caption
    assert any("image/jpeg" in o.get("data", {}) for o in outs)


def test_the_panel_shows_a_grounded_images_search_beside_it(home, make_sim):
    """The panel would show a grounded image without its search suggestion. (The panel has
    no search box yet: the job is started as its own buttons start theirs.)"""
    from nbp_jupyter import jobs, ui
    from nbp_jupyter.panel_widget import Panel

    server = make_sim(profile="ideal", time_scale=0.01)
    panel = Panel({"provider": "gemini", "base_url": server.url, "api_key": "k",
                   "time_scale": 0.01})
    try:
        [job] = ui.call(panel._spend, PROMPT, panel._options(search=True), 1, None).result(30)
        assert job.result(timeout=30).grounding is not None
        deadline = time.monotonic() + 20
        while not panel.gallery.children and time.monotonic() < deadline:
            time.sleep(0.02)  # the Finished event reaches the gallery on the UI thread
        panel.gallery.children[0].children[2].click()
        ui.flush()
        shown = panel.selected_info.value
        assert shown.count("<iframe") == 1 and "example.com/sim/source-1" in shown
        assert "<script" not in shown.lower() and SIM_TEXT in shown
    finally:
        jobs.reset_session()


def test_the_google_genai_sdk_reads_the_simulators_grounding(simulator):
    """The simulator's groundingMetadata would drift from what Google's own SDK parses."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=simulator.url))
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview", contents=PROMPT,
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            tools=[types.Tool(google_search=types.GoogleSearch())]))
    meta = response.candidates[0].grounding_metadata
    assert meta is not None and meta.web_search_queries[0] == " ".join(PROMPT.split()[:8])
    assert "<style>" in meta.search_entry_point.rendered_content
    assert meta.grounding_chunks[0].web.uri == "https://example.com/sim/source-1"
    mine = grounding.read(response.candidates[0].model_dump(by_alias=True, exclude_none=True))
    assert mine.entry_point == meta.search_entry_point.rendered_content
    plain = client.models.generate_content(model="gemini-3-pro-image-preview", contents=PROMPT)
    assert plain.candidates[0].grounding_metadata is None  # only when the tool was asked


def test_a_grounded_results_repr_carries_its_search_suggestion(home, simulator):
    """`result` as a cell's last line would show a grounded image without its search."""
    grounded, _ = _run(simulator, search=True)._repr_mimebundle_()
    assert "image/jpeg" in grounded and grounded["text/html"].count("<iframe") == 1
    assert grounded["text/html"].startswith('<img src="data:image/jpeg;base64,')
    plain, _ = _run(simulator)._repr_mimebundle_()
    assert "text/html" not in plain  # an ungrounded image stays a plain image output


def test_the_untrusted_view_links_escape_the_queries():
    """A query from the service could put its own markup into the notebook through the plain
    links an untrusted view shows."""
    found = grounding.Grounding(('<img src=x onerror="alert(1)"> & "more"', ""), (), "<b>G</b>")
    page = grounding.grounding_html(found)
    links = page[page.index('class="nbp-search-links"'):]
    assert "<img" not in links and links.count("<a ") == 1  # the empty query gets no link
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &quot;more&quot;" in links
    assert ('href="https://www.google.com/search?q=%3Cimg+src%3Dx+onerror%3D%22alert%281%29'
            '%22%3E+%26+%22more%22"') in links
