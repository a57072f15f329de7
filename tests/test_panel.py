"""The panel's logic without a browser: clicks, job rows, gallery, estimates, budget."""

from __future__ import annotations

import time

import pytest

from nbp_jupyter.estimate import PUBLISHED_SUCCESS, budget_warning
from nbp_jupyter.jobs import session
from nbp_jupyter.panel_widget import Panel


def wait_for(predicate, seconds=20.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.fixture
def panel(home, make_sim):
    server = make_sim(profile="ideal", time_scale=0.01)
    p = Panel({"provider": "gemini", "base_url": server.url, "api_key": "panel-key",
               "time_scale": 0.01})
    p.sim = server
    return p


def test_generate_twice_without_blocking_then_both_in_the_gallery(panel):
    """Two clicks with different prompts: two rows at once, then two gallery items."""
    panel.prompt.value = "a red kite"
    first = panel.click()
    panel.prompt.value = "a blue heron"
    second = panel.click()
    assert len(first) == len(second) == 1 and len(panel.jobs.children) == 2
    wait_for(lambda: len(panel.gallery.children) == 2 and "2 images" in panel.footer.value)
    texts = [row.children[1].value for row in panel.jobs.children]
    assert any("a red kite" in t for t in texts) and any("a blue heron" in t for t in texts)
    assert all('data-state="done"' in t and "1K → 1K" in t for t in texts)
    billed = sum(r.cost_usd for r in panel.results.values())
    assert "2 images" in panel.footer.value and f"billed ${billed:.3f}" in panel.footer.value


def test_rows_show_state_and_cancel_works(panel):
    """A hanging job shows as running; Cancel turns its row to cancelled."""
    panel.sim.set_script("hang")
    panel.prompt.value = "never comes"
    [job] = panel.click()
    wait_for(lambda: job.attempt == 1)
    row = panel.jobs.children[0]
    assert 'data-state="running"' in row.children[1].value
    row.children[0].click()
    wait_for(lambda: 'data-state="cancelled"' in row.children[1].value)
    assert "cancelled by you" in row.children[1].value
    assert not panel.gallery.children


def test_select_copy_again_and_upgrade(panel):
    """A selected image offers its prompt back, the same again, and a 4K upgrade."""
    panel.prompt.value = "a lighthouse"
    panel.click()
    wait_for(lambda: len(panel.gallery.children) == 1)
    panel.gallery.children[0].children[2].click()
    assert panel.selected.prompt == "a lighthouse" and "1K → 1K" in panel.selected_info.value
    panel.prompt.value = ""
    panel.copy_prompt.click()
    assert panel.prompt.value == "a lighthouse"
    [again] = panel._resubmit(None)
    [upgraded] = panel._resubmit("4K")
    assert again.request.size == "1K" and upgraded.request.size == "4K"
    assert upgraded.request.prompt == "a lighthouse"


def test_estimate_uses_published_rates_then_this_machines(home, make_sim):
    """Before 10 attempts the published 4K rate (50 %) gives 2 calls per image; after,
    what this machine saw."""
    server = make_sim(profile="ideal", time_scale=0.01, script=",".join(["503"] * 6 + ["ok"] * 6))
    p = Panel({"provider": "gemini", "base_url": server.url, "api_key": "k", "time_scale": 0.01})
    p.size.value = "4K"
    before = p.current_estimate()
    assert not before.from_history and before.success_rate == PUBLISHED_SUCCESS["4K"]
    assert before.calls_per_image == pytest.approx(2.0)
    assert before.cost_usd == pytest.approx(0.24)
    p.prompt.value = "learn"
    p.count.value = 1
    jobs = [p.submit("learn", p._options(fallback=False), 1)[0] for _ in range(5)]
    for job in jobs:
        job.result(30)
    after = p.current_estimate()
    assert after.from_history
    ok, total = session().store(p._settings()).success_counts("gemini-3-pro-image-preview", "4K")
    assert after.success_rate == pytest.approx(ok / total)
    assert "seen here" in p.estimate.value or "seen here" in after.line()


def test_budget_asks_before_spending(panel):
    """A click that would pass the budget is held until the user confirms."""
    panel.budget.value = 0.10
    panel.size.value = "4K"
    panel.prompt.value = "expensive"
    assert panel.click() == []
    assert "budget" in panel.message.value and panel.confirm.layout.display == "flex"
    assert not panel.jobs.children
    panel.confirm_yes.click()
    assert len(panel.jobs.children) == 1 and panel.confirm.layout.display == "none"


def test_budget_warning_math():
    est = type("E", (), {"cost_usd": 0.24})()
    assert budget_warning(None, 5.0, est) is None
    assert budget_warning(1.0, 0.5, est) is None
    assert "$1.00 budget" in budget_warning(1.0, 0.9, est)


def test_bad_input_shows_a_message_not_an_exception(panel):
    """An empty prompt is a one-line message in the panel."""
    panel.prompt.value = "   "
    assert panel.click() == []
    assert "prompt is empty" in panel.message.value


def test_without_a_front_end_it_says_so(capsys, home):
    """Outside Jupyter the panel prints one line instead of raising."""
    import nbp_jupyter
    assert nbp_jupyter.panel() is None
    assert "needs Jupyter with ipywidgets" in capsys.readouterr().out


def test_hedge_box_hedges_a_hung_call(panel):
    """Ticking 'hedge slow calls': a hung 4K call gets a 2K call beside it, which delivers."""
    panel.sim.set_script("hang, ok")
    panel.size.value, panel.hedge.value = "4K", True
    panel.prompt.value = "a slow kite"
    [job] = panel.click()
    result = job.result(timeout=30)
    assert [(a.resolution, a.outcome) for a in result.attempts] == [("4K", "cancelled"), ("2K", "ok")]
    wait_for(lambda: len(panel.gallery.children) == 1)


def test_a_configured_fallback_list_is_what_the_box_turns_on(home, make_sim):
    """Panel(fallback='1K') (from Nbp.fallback): 4K steps straight to 1K; unticked, no fallback."""
    server = make_sim(profile="ideal", time_scale=0.01, script="503, ok, 503")
    p = Panel({"provider": "gemini", "base_url": server.url, "api_key": "panel-key",
               "time_scale": 0.01}, fallback="1K", hedge=True)
    assert p.fallback.value and p.hedge.value
    [job] = p.submit("ladder", p._options(size="4K", retries=0), 1)
    assert [a.resolution for a in job.result(timeout=30).attempts] == ["4K", "1K"]
    p.fallback.value = False
    [job] = p.submit("no ladder", p._options(size="4K", retries=0), 1)
    assert [a.resolution for a in job.result(timeout=30).attempts] == ["4K"]
