"""The panel's logic without a browser: clicks, job rows, gallery, estimates, budget."""

from __future__ import annotations

from contextlib import closing
import time

import pytest

from nbp_jupyter import ui
from nbp_jupyter.estimate import PUBLISHED_SUCCESS, budget_warning
from nbp_jupyter.facts import MIN_SAMPLES
from nbp_jupyter.jobs import session
from nbp_jupyter.panel_widget import Panel


def on_ui(fn, *args):
    """Run a panel method where the panel's clicks run: on the UI thread."""
    return ui.call(fn, *args).result(30)


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
    yield p
    from nbp_jupyter import jobs
    jobs.reset_session()  # before the simulator stops: no connection left open to it
    # The cancelled jobs' last events reach the panel on the UI thread after the reset, and
    # its ledger reads there open the next session's store: close that one too.
    ui.flush()
    jobs.reset_session()


def test_the_footer_counts_in_words(panel):
    """The footer said 'This session: 1 images, 1 attempts' after the first image."""
    panel.prompt.value = "a red kite"
    on_ui(panel.click)
    wait_for(lambda: len(panel.gallery.children) == 1)
    wait_for(lambda: "This session: 1 image, 1 attempt, billed" in panel.footer.value)


def test_generate_twice_without_blocking_then_both_in_the_gallery(panel):
    """Two clicks with different prompts: two rows at once, then two gallery items."""
    panel.prompt.value = "a red kite"
    first = on_ui(panel.click)
    panel.prompt.value = "a blue heron"
    second = on_ui(panel.click)
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
    [job] = on_ui(panel.click)
    row = panel.jobs.children[0]
    wait_for(lambda: 'data-state="running"' in row.children[1].value)
    row.children[0].click()
    wait_for(lambda: 'data-state="cancelled"' in row.children[1].value)
    assert "cancelled by you" in row.children[1].value
    assert not panel.gallery.children


def test_select_copy_again_and_upgrade(panel):
    """A selected image offers its prompt back, the same again, and a 4K upgrade."""
    panel.prompt.value = "a lighthouse"
    on_ui(panel.click)
    wait_for(lambda: len(panel.gallery.children) == 1)
    panel.gallery.children[0].children[2].click()
    ui.flush()
    assert panel.selected.prompt == "a lighthouse" and "1K → 1K" in panel.selected_info.value
    panel.prompt.value = ""
    panel.copy_prompt.click()
    ui.flush()
    assert panel.prompt.value == "a lighthouse"
    [again] = on_ui(panel.again_click)
    [upgraded] = on_ui(panel.upgrade_click)
    assert again.request.size == "1K" and upgraded.request.size == "4K"
    assert upgraded.request.prompt == "a lighthouse"


def test_estimate_uses_published_rates_then_this_machines(home, make_sim):
    """Before MIN_SAMPLES attempts the published 4K rate (50 %) gives 2 calls per image;
    after, what this machine saw."""
    server = make_sim(profile="ideal", time_scale=0.01, script=",".join(["503"] * 10 + ["ok"] * 10))
    p = Panel({"provider": "gemini", "base_url": server.url, "api_key": "k", "time_scale": 0.01})
    p.size.value = "4K"
    before = p.current_estimate()
    assert not before.from_history and before.success_rate == PUBLISHED_SUCCESS["4K"]
    assert before.calls_per_image == pytest.approx(2.0)
    assert before.cost_usd == pytest.approx(0.24)
    p.prompt.value = "learn"
    p.count.value = 1
    jobs = on_ui(p.submit, "learn", p._options(fallback=False, retries=0), MIN_SAMPLES)
    for job in jobs:
        job.result(30)
    after = p.current_estimate()
    assert after.from_history
    ok, total = session().store(p._settings()).success_counts("gemini-3-pro-image-preview", "4K")
    assert after.success_rate == pytest.approx(ok / total)
    ui.flush()
    assert "seen here" in p.estimate.value


def test_budget_asks_before_spending(panel):
    """A click that would pass the budget is held until the user confirms."""
    panel.budget.value = 0.10
    panel.size.value = "4K"
    panel.prompt.value = "expensive"
    assert on_ui(panel.click) == []
    assert "budget" in panel.message.value and panel.confirm.layout.display == "flex"
    assert not panel.jobs.children
    panel.confirm_yes.click()
    ui.flush()
    assert len(panel.jobs.children) == 1 and panel.confirm.layout.display == "none"


def test_budget_warning_math():
    """The guard counts billed and unknown spending, and names both as the footer does."""
    est = type("E", (), {"cost_usd": 0.24})()
    assert budget_warning(None, 5.0, 0.0, est) is None
    assert budget_warning(1.0, 0.5, 0.0, est) is None
    assert budget_warning(1.0, 0.5, 0.3, est) is not None
    warning = budget_warning(0.50, 1.53, 0.24, est)
    assert "$0.50 budget" in warning and "billed $1.530" in warning and "$0.240 unknown" in warning


def test_bad_input_shows_a_message_not_an_exception(panel):
    """An empty prompt is a one-line message in the panel."""
    panel.prompt.value = "   "
    assert on_ui(panel.click) == []
    assert "prompt is empty" in panel.message.value


def test_without_a_front_end_it_says_so(capsys, home):
    """Outside Jupyter the panel prints one line instead of raising."""
    import nbp_jupyter
    assert nbp_jupyter.panel() is None
    assert "needs Jupyter with ipywidgets" in capsys.readouterr().out


def test_hedge_box_hedges_a_hung_call(panel):
    """Ticking 'hedge slow calls': a hung 4K call gets another 4K call beside it, which delivers."""
    panel.sim.set_script("hang, ok")
    panel.size.value, panel.hedge.value = "4K", True
    panel.prompt.value = "a slow kite"
    [job] = on_ui(panel.click)
    result = job.result(timeout=30)
    assert [(a.resolution, a.outcome) for a in result.attempts] == [("4K", "cancelled"),
                                                                    ("4K", "ok")]
    wait_for(lambda: len(panel.gallery.children) == 1)


def test_a_configured_fallback_list_is_what_the_box_turns_on(home, make_sim):
    """Panel(fallback='1K') (from Nbp.fallback): 4K steps straight to 1K; unticked, no fallback."""
    server = make_sim(profile="ideal", time_scale=0.01, script="503, ok, 503")
    p = Panel({"provider": "gemini", "base_url": server.url, "api_key": "panel-key",
               "time_scale": 0.01}, fallback="1K", hedge=True)
    assert p.fallback.value and p.hedge.value
    [job] = on_ui(p.submit, "ladder", p._options(size="4K", retries=0), 1)
    assert [a.resolution for a in job.result(timeout=30).attempts] == ["4K", "1K"]
    p.fallback.value = False
    [job] = on_ui(p.submit, "no ladder", p._options(size="4K", retries=0), 1)
    assert [a.resolution for a in job.result(timeout=30).attempts] == ["4K"]


def _select_first(panel):
    panel.gallery.children[0].children[2].click()
    ui.flush()


def test_every_paid_button_asks_past_the_budget(panel):
    """Past the budget, Again, Upgrade and Refine ask first as Generate does, instead of
    spending."""
    panel.prompt.value = "a kite"
    [job] = on_ui(panel.click)
    job.result(30)
    wait_for(lambda: len(panel.gallery.children) == 1)
    _select_first(panel)
    panel.budget.value = 0.01  # already passed by the first image
    panel.refine_prompt.value = "make it darker"
    before = len(session().jobs)
    for button in (panel.go, panel.again, panel.upgrade, panel.refine):
        panel.confirm.layout.display = "none"
        button.click()
        ui.flush()
        assert panel.confirm.layout.display == "flex", button.description
        assert "budget" in panel.message.value and "billed $" in panel.message.value
    assert len(session().jobs) == before
    panel.upgrade.click()
    panel.confirm_yes.click()  # the held click is the upgrade, at 4K
    ui.flush()
    assert len(session().jobs) == before + 1
    assert list(session().jobs.values())[-1].request.size == "4K"
    panel.refine.click()
    panel.confirm_yes.click()  # the held click is the refine, of the selected image
    ui.flush()
    refined = list(session().jobs.values())[-1]
    assert (refined.request.parent, refined.request.prompt) == (job.id, "make it darker")


def test_upgrade_is_offered_below_4k_only_and_says_its_cost(panel):
    """A 1K image offers 'Upgrade to 4K (~$0.24)'; a 4K image does not offer it at all."""
    panel.prompt.value = "small"
    [small] = on_ui(panel.click)
    panel.size.value = "4K"
    panel.prompt.value = "big"
    [big] = on_ui(panel.click)
    small.result(30), big.result(30)
    wait_for(lambda: len(panel.gallery.children) == 2)
    on_ui(panel.select, small.result())
    assert panel.upgrade.layout.display != "none" and "~$0.24" in panel.upgrade.description
    on_ui(panel.select, big.result())
    assert panel.upgrade.layout.display == "none"
    assert on_ui(panel.upgrade_click) == []


def test_clicked_button_shows_its_job_until_it_ends_and_order_is_newest_first(panel):
    """Again says which job it started and waits for it; the selected tile is highlighted;
    gallery and job list both put the newest first; a finished row has no Cancel button."""
    panel.sim.set_script("ok:150s, ok")  # the first asked lands last
    jobs = []
    for prompt in ("first", "second"):
        panel.prompt.value = prompt
        jobs += on_ui(panel.click)
        # requests are built off the loop, so two clicks may reach the simulator in either
        # order: the second waits until the first was received (and took the slow answer)
        wait_for(lambda: len(panel.sim.log) == len(jobs))
    jobs[0].result(30), jobs[1].result(30)
    assert jobs[0].result().elapsed_s > jobs[1].result().elapsed_s
    wait_for(lambda: len(panel.gallery.children) == 2)
    rows = [row.children[1].value for row in panel.jobs.children]
    tiles = [tile.children[1].value for tile in panel.gallery.children]
    assert "second" in rows[0] and "second" in tiles[0] and "first" in tiles[1]
    panel.sim.set_script("hang")
    _select_first(panel)
    assert "nbp-selected" in panel.gallery.children[0]._dom_classes
    assert "nbp-selected" not in panel.gallery.children[1]._dom_classes
    panel.again.click()
    ui.flush()
    [again] = [j for j in session().jobs.values() if not j.done()]
    assert panel.again.disabled and again.id in panel.again.description
    panel.again.click()  # a second click on a disabled button does nothing
    ui.flush()
    assert sum(not j.done() for j in session().jobs.values()) == 1
    again.cancel()
    wait_for(lambda: not panel.again.disabled and panel.again.description == "Again")
    row = panel.jobs.children[0]
    assert again.id in row.children[1].value
    assert row.children[0].layout.display == "none"


def test_widgets_change_on_one_thread_only(panel, monkeypatch):
    """Clicks, job events and ticks change widgets only on the UI thread (traitlets is not
    thread-safe: before, the loop, the kernel and listeners each changed them)."""
    import threading

    import ipywidgets

    changes = []
    notify = ipywidgets.Widget._notify_trait

    def record(self, name, old, new):
        changes.append((type(self).__name__, name, threading.current_thread().name))
        return notify(self, name, old, new)

    monkeypatch.setattr(ipywidgets.Widget, "_notify_trait", record)
    panel.prompt.value = "a kite"  # the front end's own edits arrive on the kernel's thread
    panel.refine_prompt.value = "a darker sky"
    start = len(changes)
    panel.go.click()
    wait_for(lambda: len(panel.gallery.children) == 1)
    _select_first(panel)
    panel.again.click()
    wait_for(lambda: len(panel.gallery.children) == 2)
    panel.refine.click()  # the strip of turns is drawn, and redrawn, on the UI thread too
    wait_for(lambda: len(panel.turns.box.children) == 2)
    panel.turns.box.children[0].children[2].click()
    ui.flush()
    assert "new branch" in panel.refine.description
    threads = {thread for _, _, thread in changes[start:]}
    assert threads == {"nbp-ui_0"}, {c for c in changes[start:] if c[2] != "nbp-ui_0"}


def test_nothing_blocking_runs_on_the_engine_loop(panel, monkeypatch):
    """Ledger reads and writes and previews never run on the loop that times attempts (a
    100 ms preview there stalls every other job's clock)."""
    import threading

    from nbp_jupyter import preview, store

    calls = []

    def spy(owner, name):
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):
            calls.append((name, threading.current_thread().name))
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapped)

    for name in ("jobs", "history", "attempts", "success_counts", "latencies", "finish_job",
                 "end_attempt", "begin_attempt", "begin_job", "save_image"):
        spy(store.Store, name)
    spy(preview, "preview")
    panel.prompt.value = "a kite"
    [done] = on_ui(panel.click)
    panel.sim.set_script("hang")
    panel.prompt.value = "cut off"
    [cancelled] = on_ui(panel.click)
    wait_for(lambda: cancelled.attempt == 1)
    cancelled.cancel()
    done.result(30), cancelled.result(30)
    ui.flush()
    assert {"finish_job", "end_attempt", "preview", "history"} <= {name for name, _ in calls}
    assert [c for c in calls if c[1] == "nbp-jobs"] == []


# ----- refine by conversation, from the panel ------------------------------------------------
def _generate_and_select(panel, prompt="a harbour at dusk"):
    panel.prompt.value = prompt
    [job] = on_ui(panel.click)
    job.result(30)
    wait_for(lambda: job.id in panel.tiles)
    on_ui(panel.select, panel.tiles[job.id].result)
    return job


def _refine(panel, text):
    """Type in the Refine box, click, and wait until the refined image is the selection."""
    before = panel.selected.job_id
    panel.refine_prompt.value = text
    [job] = on_ui(panel.refine_click)
    job.result(30)
    wait_for(lambda: panel.selected.job_id == job.id)
    ui.flush()
    assert panel.selected.job_id != before
    return job


def _uploaded(name, data):
    """One file as ipywidgets 8's FileUpload holds it after a browser upload."""
    from datetime import datetime, timezone
    return {"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
            "last_modified": datetime.now(timezone.utc)}


def _strip(panel):
    """(turn number, prompt shown) of each card in the conversation strip."""
    return [(e.number, e.prompt) for e in panel.turns.exchanges]


def test_refine_twice_then_branch_from_the_first_turn(panel):
    """Refine continues the selected image (three turns in the strip), and picking turn 1
    refines that one: a new branch of two turns, not a fourth turn."""
    first = _generate_and_select(panel)
    assert _strip(panel) == [(1, "a harbour at dusk")]
    assert panel.refine.description == "Refine turn 1"
    second = _refine(panel, "make the sky darker")
    third = _refine(panel, "add a red boat")
    assert (second.request.parent, second.request.turn) == (first.id, 2)
    assert (third.request.parent, third.request.turn) == (second.id, 3)
    assert len(third.request.history) == 4  # two earlier exchanges, user and model each
    assert _strip(panel) == [(1, "a harbour at dusk"), (2, "make the sky darker"),
                             (3, "add a red boat")]
    cards = panel.turns.box.children
    assert len(cards) == 3 and "nbp-turn-picked" in cards[2]._dom_classes
    assert sum(isinstance(c.children[0], __import__("ipywidgets").Image) for c in cards) == 3
    assert "turn 3 · refines " + second.id in panel.selected_info.value
    assert panel.refine_prompt.value == ""  # cleared for the next instruction

    cards[0].children[2].click()  # "Refine this" on turn 1
    ui.flush()
    assert panel.turns.picked.job_id == first.id and "new branch" in panel.refine.description
    branch = _refine(panel, "same harbour at noon")
    assert (branch.request.parent, branch.request.turn) == (first.id, 2)
    assert len(branch.request.history) == 2
    assert _strip(panel) == [(1, "a harbour at dusk"), (2, "same harbour at noon")]
    assert len(panel.gallery.children) == 4
    assert "turn 2 · " in panel.gallery.children[0].children[1].value


def test_uploaded_references_are_saved_under_home_and_sent(panel, home):
    """An uploaded PNG is kept under NBP_HOME/references and goes with Generate and Refine as
    a reference image, recorded in the ledger by that path; Clear stops sending it."""
    import io

    from PIL import Image

    from nbp_jupyter import api

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "orange").save(buf, "PNG")
    panel.upload.value = (_uploaded("my logo.png", buf.getvalue()),)
    wait_for(lambda: panel.references)
    ui.flush()
    [saved] = panel.references
    assert saved.parent == home / "references" and saved.read_bytes() == buf.getvalue()
    assert "1 reference image: my_logo.png" in panel.uploaded.value
    job = _generate_and_select(panel, "a mug with this logo")
    [ref] = job.request.images
    assert ref.path == str(saved.resolve()) and ref.mime == "image/png"
    refined = _refine(panel, "the mug in blue")
    assert [r.path for r in refined.request.images] == [str(saved.resolve())]
    [turn1, turn2] = api.conversation_of(refined)
    assert [p.path for p in turn1.references] == [str(saved.resolve())]
    panel.clear_uploads.click()
    wait_for(lambda: not panel.references)
    ui.flush()
    assert panel.uploaded.value == "" and panel._options().images == ()


def test_refine_mistakes_are_one_line_messages(panel, home):
    """An empty instruction, a turn whose image file is gone and an upload that is no image
    each give one line in the panel; nothing is started and nothing is lost. (A refine with
    an OpenAI-style provider is no mistake: it edits the last image, tests/test_conversation.py.)"""
    first = _generate_and_select(panel)
    started = len(session().jobs)
    panel.refine_prompt.value = "  "
    assert on_ui(panel.refine_click) == [] and "prompt is empty" in panel.message.value

    panel.refine_prompt.value = "darker"
    image = first.result().image_path
    moved = image.with_name("elsewhere.png")
    image.rename(moved)
    on_ui(panel.select, panel.tiles[first.id].result)  # redraws the strip from the ledger
    assert "image file missing" in panel.turns.box.children[0].children[0].value
    assert on_ui(panel.refine_click) == []
    assert "is missing or unreadable" in panel.message.value and "\n" not in panel.message.value
    moved.rename(image)

    panel.upload.value = (_uploaded("notes.png", b"hello"),)  # said at once, and left out
    wait_for(lambda: "notes.png" in panel.message.value)
    ui.flush()
    assert "not an image Pillow can read" in panel.message.value and panel.references == []
    assert panel.uploaded.value == "" and panel._options().images == ()
    assert "Traceback" not in panel.message.value and len(session().jobs) == started


def test_the_strip_reads_the_ledger_on_the_ui_thread(panel, monkeypatch):
    """The conversation strip's ledger reads and thumbnails run on the UI thread, never on
    the engine's loop (which times every attempt) nor the kernel's thread."""
    import threading

    from nbp_jupyter import panel_turns, store

    calls = []
    for owner, name in ((store.Store, "conversation"), (panel_turns, "preview_jpeg")):
        original = getattr(owner, name)

        def wrapped(*args, _original=original, _name=name, **kwargs):
            calls.append((_name, threading.current_thread().name))
            return _original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapped)
    _generate_and_select(panel)
    panel.refine_prompt.value = "darker"
    panel.refine.click()  # from the kernel's thread, as a browser click arrives
    wait_for(lambda: len(panel.turns.exchanges) == 2)
    ui.flush()
    assert {name for name, _ in calls} == {"conversation", "preview_jpeg"}
    assert {thread for _, thread in calls} == {"nbp-ui_0"}, calls


def test_a_refine_that_fails_says_so_and_keeps_the_selection(panel):
    """A refine the service refuses leaves the selected image, its strip and the typed
    instruction as they were, and says in the panel's error line that it failed and why."""
    first = _generate_and_select(panel)
    panel.sim.set_script("safety")
    panel.refine_prompt.value = "something the service refuses"
    [job] = on_ui(panel.refine_click)
    assert not job.result(30).success
    wait_for(lambda: "failed" in panel.message.value)
    ui.flush()
    assert f"Refine {job.id} failed" in panel.message.value and "\n" not in panel.message.value
    assert panel.selected.job_id == first.id and _strip(panel) == [(1, "a harbour at dusk")]
    assert not panel.refine.disabled and panel.refine.description == "Refine turn 1"
    assert panel.refine_prompt.value == "something the service refuses"  # not lost


def test_redrawing_the_strip_closes_its_old_widgets(panel):
    """Selecting images again and again does not pile up widgets in the kernel (each card's
    image, label and button would otherwise live as long as the kernel)."""
    from ipywidgets.widgets.widget import _instances

    first = _generate_and_select(panel)
    second = _refine(panel, "darker")  # selected: a strip of two cards
    before = len(_instances)
    for _ in range(5):
        on_ui(panel.select, panel.tiles[first.id].result)
        on_ui(panel.select, panel.tiles[second.id].result)
    assert len(panel.turns.box.children) == 2
    assert len(_instances) == before  # the same two cards, drawn anew


def test_selecting_an_image_whose_turn_is_damaged_says_so_and_refines_nothing(panel, home):
    """Selecting it left the previous image's strip up, so Refine edited the wrong picture."""
    import sqlite3

    first = _generate_and_select(panel)
    second = _generate_and_select(panel, "a lighthouse at noon")
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db, db:
        db.execute("UPDATE turns SET parts='{cut' WHERE job_id=?", (second.id,))
    on_ui(panel.select, panel.tiles[first.id].result)
    on_ui(panel.select, panel.tiles[second.id].result)
    assert f"job {second.id} is damaged" in panel.message.value
    assert "\n" not in panel.message.value and panel.turns.exchanges == []
    started = len(session().jobs)
    panel.refine_prompt.value = "darker"
    assert on_ui(panel.refine_click) == [] and len(session().jobs) == started
    assert second.result().image_path.is_file()


@pytest.mark.parametrize("name", ["../../evil.png", "..\\..\\evil.png", "/etc/cron.d/x.png",
                                  "..", "", "a\x00b.png", "logo\n<script>.png"])
def test_an_uploaded_files_name_cannot_leave_the_references_folder(tmp_path, name):
    """A browser-supplied name such as ../../x would write the upload outside NBP_HOME."""
    from nbp_jupyter.panel_turns import save_uploads

    [saved] = save_uploads(tmp_path / "home", [_uploaded(name, b"\x89PNG not really")])
    assert saved.parent == tmp_path / "home" / "references"
    assert saved.read_bytes() == b"\x89PNG not really"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [saved.name]
    assert not set(saved.name) & set("/\\\x00\n<>")


def test_an_upload_that_cannot_be_saved_says_where_and_what_to_do(panel, home):
    """A full disk or a read-only NBP_HOME showed only '[Errno 17] File exists: ...'."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "references").write_text("a file where the folder should be")
    panel.upload.value = (_uploaded("logo.png", b"\x89PNG"),)
    wait_for(lambda: "could not be saved" in panel.message.value)
    ui.flush()
    message = panel.message.value
    assert str(home / "references") in message and "images=[path]" in message
    assert "\n" not in message and panel.references == []
