"""Magics in an in-process IPython shell: help, config, tables; the fast checks."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import start_ipython

import nbp_jupyter as nbp


@pytest.fixture
def ip(home, make_sim):
    import IPython

    shell = start_ipython() or IPython.get_ipython()  # the first call starts, later ones return None
    shell.run_line_magic("load_ext", "nbp_jupyter")
    shell.run_line_magic("config", "Nbp.time_scale = 0.01")
    shell.run_line_magic("config", "Nbp.sim_profile = 'ideal'")
    shell.run_line_magic("config", f"Nbp.home = {str(home)!r}")
    shell.run_line_magic("config", "Nbp.provider = 'sim'")
    shell.run_line_magic("config", "Nbp.size = '1K'")
    yield shell
    nbp.unload_ipython_extension(shell)
    shell.extension_manager.loaded.discard("nbp_jupyter")


def test_help_lists_every_option(ip):
    """`%nbp?` shows every option with its help."""
    doc = ip.find_cell_magic("nbp").__doc__
    for option in ("--size", "--aspect", "--model", "--provider", "--timeout", "--retries",
                   "--fallback", "--no-fallback", "--image", "-n", "--wait", "--out",
                   "--deadline", "--interpolate", "--hedge", "--no-hedge", "--refine"):
        assert option in doc
    from nbp_jupyter.config import PROVIDERS
    from nbp_jupyter.magics import Nbp

    # --provider and Nbp.provider named three of the five providers
    said = " ".join(doc.rsplit("--provider", 1)[1].split("--timeout")[0].split())
    assert all(p in said and p in Nbp.provider.help for p in PROVIDERS), said


def test_prompt_is_literal_unless_interpolate(ip):
    """Braces and $ stay text; --interpolate fills {name} from the user's variables."""
    ip.user_ns["animal"] = "fox"
    ip.run_cell_magic("nbp", "--wait --out lit", "a {animal} for $5")
    ip.run_cell_magic("nbp", "--wait --out filled --interpolate", "a {animal} for $5")
    assert ip.user_ns["lit"].request.prompt == "a {animal} for $5"
    assert ip.user_ns["filled"].request.prompt == "a fox for $5"


def test_config_defaults_apply_and_options_win(ip):
    """%config Nbp.size sets the default; --size overrides it."""
    ip.run_line_magic("config", "Nbp.size = '2K'")
    ip.run_cell_magic("nbp", "--wait --out d", "default size")
    ip.run_cell_magic("nbp", "--wait --out o --size 1K", "explicit size")
    assert ip.user_ns["d"].result().requested == "2K"
    assert ip.user_ns["o"].result().requested == "1K"


def _nbp_conf(ip):
    return next(c for c in ip.configurables if type(c).__name__ == "Nbp")


def test_config_refuses_a_bad_default_in_one_line(ip, caplog):
    """`%config Nbp.size = "8K"` was kept silently; the next cell then failed far from it."""
    ip.run_line_magic("config", 'Nbp.size = "8K"')
    ip.run_line_magic("config", 'Nbp.aspect = "16:10"')
    ip.run_line_magic("config", 'Nbp.provider = "gemeni"')
    ip.run_line_magic("config", "Nbp.max_concurrency = 0")
    ip.run_line_magic("config", "Nbp.fallback = '8K, 2K'")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 5 and not any("\n" in e for e in errors), errors
    assert errors[0].startswith("Nbp.size = '8K' refused") and "1K, 2K, 4K" in errors[0]
    assert "Nbp.aspect" in errors[1] and "16:9" in errors[1]
    assert "Nbp.provider" in errors[2] and "openrouter" in errors[2]
    assert "Nbp.max_concurrency" in errors[3] and "above 0" in errors[3]
    assert errors[4].startswith("Nbp.fallback = '8K, 2K' refused") and "'8K'" in errors[4]
    conf = _nbp_conf(ip)
    assert (conf.size, conf.aspect, conf.provider, conf.max_concurrency, conf.fallback) == (
        "1K", "1:1", "sim", None, None)
    ip.run_line_magic("config", "Nbp.fallback = 'openai:4K, 2K'")  # its key may come later
    assert conf.fallback == "openai:4K, 2K"
    ip.run_line_magic("config", 'Nbp.size = "2k"')
    assert conf.size == "2K"
    # IPython keeps the refused value in the shell's config: reloading must still work
    nbp.unload_ipython_extension(ip)
    ip.extension_manager.loaded.discard("nbp_jupyter")
    ip.run_line_magic("load_ext", "nbp_jupyter")
    assert (_nbp_conf(ip).size, _nbp_conf(ip).aspect) == ("2K", "1:1")
    for line in ("Nbp.aspect = '1:1'", "Nbp.provider = 'sim'", "Nbp.max_concurrency = None",
                 "Nbp.fallback = None"):
        ip.run_line_magic("config", line)


def test_nbp_config_shows_the_magic_defaults_and_where_each_came_from(ip, monkeypatch):
    """%nbp_config hid size, aspect and wait, and did not say which setting came from where."""
    monkeypatch.setenv("NBP_MODEL", "gemini-2.5-flash-image")
    monkeypatch.delenv("NBP_WAIT", raising=False)
    ip.run_line_magic("config", "Nbp.aspect = '16:9'")
    try:
        page = _html_of(ip, monkeypatch, "nbp_config").outputs[0].data["text/html"]
    finally:
        ip.run_line_magic("config", "Nbp.aspect = '1:1'")
    assert "<th>from</th>" in page
    assert "<td>aspect</td><td>16:9</td><td>%config Nbp.aspect</td>" in page
    assert "<td>wait</td><td>auto</td><td>default</td>" in page
    assert "<td>size</td><td>1K</td><td>default</td>" in page
    assert "<td>provider</td><td>sim</td><td>%config Nbp.provider</td>" in page
    assert "<td>model</td><td>gemini-2.5-flash-image</td><td>NBP_MODEL</td>" in page
    assert "<td>max_concurrency</td><td>8</td><td>default</td>" in page
    monkeypatch.setenv("NBP_WAIT", "never")
    page = _html_of(ip, monkeypatch, "nbp_config").outputs[0].data["text/html"]
    assert "<td>wait</td><td>never</td><td>NBP_WAIT</td>" in page


def test_unknown_job_ids_are_usage_errors(ip):
    with pytest.raises(UsageError, match="no job zzz"):
        ip.run_line_magic("nbp_wait", "zzz")


def test_refine_in_a_cell_continues_the_job_and_says_so(ip, monkeypatch):
    """A --refine cell would draw a fresh image, or its caption would hide what it refined."""
    with pytest.raises(UsageError, match="needs an image made in this session"):
        ip.run_cell_magic("nbp", "--refine _", "darker")
    with pytest.raises(UsageError, match="no job 'nope'"):
        ip.run_cell_magic("nbp", "--refine nope", "darker")
    ip.run_cell_magic("nbp", "--wait --size 2K --aspect 3:4 --out first", "a red fox")
    first = ip.user_ns["first"]
    ip.run_cell_magic("nbp", "--wait --refine _ --out second", "make the sky darker")
    second = ip.user_ns["second"].result()
    assert second.success and second.caption().startswith(f"turn 2 · refines {first.id} · 2K")
    assert (second.width, second.height) == (first.result().width, first.result().height)
    ip.run_cell_magic("nbp", f"--wait --refine {first.id} --size 1K --out branch", "at dawn")
    branch = ip.user_ns["branch"].result()
    assert branch.caption().startswith(f"turn 2 · refines {first.id} · 1K")
    # shown again from the ledger, it still says which turn it is
    shown = _html_of(ip, monkeypatch, "nbp_show", branch.job_id).outputs[-1]
    assert shown.data["text/plain"].startswith(f"turn 2 · refines {first.id} · 1K")
    records = {r["id"]: r for r in nbp.history()}
    assert records[branch.job_id]["refines"] == first.id and "turn" not in records[first.id]


def test_loading_twice_and_unloading_is_harmless(ip):
    """A second %load_ext and an unload leave the shell working."""
    ip.run_line_magic("reload_ext", "nbp_jupyter")
    assert ip.find_cell_magic("nbp") is not None
    nbp.unload_ipython_extension(ip)
    assert ip.find_cell_magic("nbp") is None
    nbp.load_ipython_extension(ip)
    assert ip.find_cell_magic("nbp") is not None


@pytest.mark.parametrize("size", ["1K"])
def test_realistic_bodies_are_real_sized(make_sim, size):
    """--realistic makes bodies as heavy as real PNGs (about a byte per pixel)."""
    import httpx
    server = make_sim(profile="ideal", realistic=True)
    response = httpx.post(server.url + "/v1beta/models/gemini-3-pro-image-preview:generateContent",
                          json={"contents": [{"parts": [{"text": "x"}]}]},
                          headers={"x-goog-api-key": "k"}, timeout=10)
    assert len(response.content) > 1024 * 1024


def test_agenerate_awaits_without_blocking(home, make_sim):
    """The async twin returns the same result while the caller's loop keeps running."""
    import asyncio

    server = make_sim(profile="ideal", time_scale=0.01)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        task = asyncio.create_task(ticker())
        result = await nbp.agenerate("async fox", provider="gemini", base_url=server.url,
                                     api_key="k", time_scale=0.01)
        task.cancel()
        return result, ticks

    result, ticks = asyncio.run(main())
    assert result.success and result.requested == "1K"
    assert ticks > 1  # the caller's loop ran while the image was made


def test_finished_displays_let_their_previews_go_and_resend_renders_them(ip):
    """A finished cell keeps no rendered preview in memory; %nbp_wait draws it again from disk."""
    from IPython.utils.capture import capture_output

    from nbp_jupyter import live

    ip.run_cell_magic("nbp", "-n 2 --out grid", "two kites")
    jobs = ip.user_ns["grid"]
    view = live.view_for(jobs[0].id)
    view.ticker.done.result(timeout=30)  # ends once both results were shown
    assert all(job.done() for job in jobs) and view._final == {}
    with capture_output() as captured:
        ip.run_line_magic("nbp_wait", " ".join(job.id for job in jobs))
    images = [o for o in captured.outputs if "image/jpeg" in o.data]
    captions = [o.data["text/html"] for o in captured.outputs if "nbp-result" in o.data.get("text/html", "")]
    assert len(images) == 2 and len(captions) == 2 and all("SIMULATED" in c for c in captions)


def test_the_status_line_expects_the_size_under_way(ip):
    """After a fall back to 2K the line promises 2K's times, not 4K's."""
    import time

    from nbp_jupyter import display, live
    from nbp_jupyter.jobs import session
    from nbp_jupyter.policy import PUBLISHED_LATENCY

    ip.run_cell_magic("nbp", "--size 1K --wait", "start the simulator")
    [server] = session().simulators.servers()
    # 4K fails four times (quick failures get a fourth try), then 2K hangs while we look
    server.set_script("503, 503, 503, 503, hang")
    ip.run_cell_magic("nbp", "--size 4K --out big", "a storm")
    job = ip.user_ns["big"]
    deadline = time.monotonic() + 20
    while job.attempt < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    text = live.view_for(job.id).status_bundle(job)["text/plain"]
    job.cancel()
    low, high = (display.clock(s) for s in PUBLISHED_LATENCY["2K"])
    assert "2K · attempt 5" in text and f"usually {low}–{high}" in text, text


def test_a_try_past_the_usual_count_is_not_one_of_fewer(home):
    """A fourth 4K try, granted after quick failures, read 'try 4 of 3 at this size'."""
    from nbp_jupyter import config, display
    from nbp_jupyter.events import AttemptStarted
    from nbp_jupyter.jobs import Job
    from nbp_jupyter.types import Request

    job = Job("00abcd", Request(prompt="a storm", size="4K"), config.resolve(provider="sim"))
    job._on_event(AttemptStarted(job.id, 1, "4K", "m", 200.0, 1, 3))  # now running
    job._on_event(AttemptStarted(job.id, 3, "4K", "m", 200.0, 3, 3))
    assert "attempt 3 (try 3 of 3 at this size)" in display.status_text(job, None, 1.0)
    job._on_event(AttemptStarted(job.id, 4, "4K", "m", 200.0, 4, 3))
    text = display.status_text(job, None, 1.0)
    assert "attempt 4 (try 4 at this size)" in text and "of 3" not in text, text


def _builtin_sim(ip):
    """The session's on-demand simulator, started by a first quick job."""
    from nbp_jupyter.jobs import session

    ip.run_cell_magic("nbp", "--size 1K --wait", "start the simulator")
    [server] = session().simulators.servers()
    return server


def test_config_sets_the_default_fallback_and_hedge(ip):
    """Nbp.fallback replaces the ladder; Nbp.hedge hedges unless a cell says --no-hedge."""
    server = _builtin_sim(ip)
    ip.run_line_magic("config", "Nbp.fallback = '1K'")
    server.set_script("503")
    ip.run_cell_magic("nbp", "--size 4K --retries 0 --wait --out a", "skips 2K")
    assert [x.resolution for x in ip.user_ns["a"].result().attempts] == ["4K", "1K"]
    ip.run_line_magic("config", "Nbp.fallback = '2K, 1K'")
    server.set_script("503")
    ip.run_cell_magic("nbp", "--size 1K --retries 0 --wait --out b", "never climbs up")
    assert [x.resolution for x in ip.user_ns["b"].result().attempts] == ["1K"]
    ip.run_line_magic("config", "Nbp.fallback = None")
    ip.run_line_magic("config", "Nbp.hedge = True")
    server.set_script("hang, ok")  # a fixed 600 s timeout: the 4K hedge (170-340 s) comes first
    ip.run_cell_magic("nbp", "--size 4K --timeout 600 --wait --out h", "hedged by default")
    assert [(x.resolution, x.outcome) for x in ip.user_ns["h"].result().attempts] == [
        ("4K", "cancelled"), ("4K", "ok")]
    server.set_script("ok:400s")  # past any hedge point, and still no hedge
    ip.run_cell_magic("nbp", "--size 4K --timeout 600 --no-hedge --wait --out n", "not hedged")
    assert [x.resolution for x in ip.user_ns["n"].result().attempts] == ["4K"]


def test_nbp_config_shows_where_a_fallback_provider_would_go(ip, monkeypatch):
    """A configured 'openai:' step is checked: endpoint and key present, or what is missing."""
    from IPython.utils.capture import capture_output

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(ip.display_formatter, "active_types",
                        [*ip.display_formatter.active_types, "text/html"])  # as a kernel has
    ip.run_line_magic("config", "Nbp.fallback = 'openai:4K, 2K'")
    with capture_output() as missing:
        ip.run_line_magic("nbp_config", "")
    monkeypatch.setenv("OPENAI_API_KEY", "config-test-key")
    monkeypatch.setenv("NBP_OPENAI_BASE_URL", "https://gateway.example.com/v1")
    with capture_output() as present:
        ip.run_line_magic("nbp_config", "")
    ip.run_line_magic("config", "Nbp.fallback = None")
    before, after = ("".join(x.data.get("text/html", "") for x in o.outputs)
                     for o in (missing, present))
    assert "fallback openai" in before and "set OPENAI_API_KEY" in before
    assert "https://gateway.example.com, model nano-banana-pro, key set" in after
    assert "config-test-key" not in after and "openai:4K, 2K" in after


def test_line_magic_keeps_braces_and_dollars_as_text(ip):
    """`%nbp a {animal} for $5` sends exactly that, as the cell form does (IPython expands
    line magics unless they opt out)."""
    ip.user_ns["animal"] = "fox"
    ip.run_cell("%nbp --wait --out line_job a {animal} for $5")
    assert ip.user_ns["line_job"].request.prompt == "a {animal} for $5"


def _html_of(ip, monkeypatch, line_magic, line=""):
    from IPython.utils.capture import capture_output

    monkeypatch.setattr(ip.display_formatter, "active_types",
                        [*ip.display_formatter.active_types, "text/html"])  # as a kernel has
    with capture_output() as captured:
        ip.run_line_magic(line_magic, line)
    return captured


def test_elapsed_stops_at_the_end_and_reads_like_the_caption(ip, monkeypatch):
    """A finished job's elapsed time stops, and %nbp_jobs, the history and the caption agree
    (they showed 0:02, then 0:27, then 4:24 for one finished job)."""
    import time

    from nbp_jupyter import display
    from nbp_jupyter.timefmt import clock

    ip.run_cell_magic("nbp", "--wait --out j", "a finished kite")
    job = ip.user_ns["j"]
    first = display.service_elapsed(job)
    time.sleep(0.3)  # 30 simulated seconds at this scale
    assert display.service_elapsed(job) == first == job.result().elapsed_s
    shown = clock(job.result().elapsed_s)
    assert shown in job.result().caption()
    jobs_html = _html_of(ip, monkeypatch, "nbp_jobs").outputs[0].data["text/html"]
    assert f"<td>{shown}</td>" in jobs_html
    history = _html_of(ip, monkeypatch, "nbp_history").outputs[0].data["text/html"]
    assert f"<td>{shown}</td>" in history


def test_one_rounding_for_every_clock():
    """12:58.6 reads the same in a caption, a status line and an estimate (they rounded
    three ways)."""
    from nbp_jupyter import display, estimate, timefmt

    assert display.clock is timefmt.clock
    assert f"~{timefmt.clock(778.6)} each" in estimate.Estimate(1, 1.0, False, 1.0, 0.1, 778.6).line()


def test_words_that_do_not_mislead(ip, monkeypatch):
    """%nbp_config says the simulator needs no key; an empty history points to --all;
    %nbp_show keeps SIMULATED and shows the image as an image output."""
    config = _html_of(ip, monkeypatch, "nbp_config").outputs[0].data["text/html"]
    assert "<td>api_key</td><td>simulator, no key needed</td>" in config
    empty = _html_of(ip, monkeypatch, "nbp_history")
    assert "0 images from 0 jobs" in empty.outputs[0].data["text/html"]
    assert "%nbp_history --all" in empty.stdout
    ip.run_cell_magic("nbp", "--wait --out j", "a shown kite")
    shown = _html_of(ip, monkeypatch, "nbp_show", ip.user_ns["j"].id)
    image, caption = shown.outputs
    assert "image/jpeg" in image.data and image.metadata["image/jpeg"]["width"] > 0
    assert "SIMULATED" in caption.data["text/html"]
    assert "SIMULATED" in caption.data["text/plain"] and "1K → 1K" in caption.data["text/plain"]


def test_stale_line_script_cannot_be_broken_out_of_by_a_prompt(tmp_path):
    """A prompt with '</script>' or '<!--' in a job of an earlier kernel stays data in the
    script that updates its old status line (it cannot end the script or start markup)."""
    import json

    from nbp_jupyter import stale
    from nbp_jupyter.jobs import _empty_result
    from nbp_jupyter.store import Store
    from nbp_jupyter.types import Request

    prompt = "</script><script>alert(1)</script> <!-- & >"
    old = Store(tmp_path, session="earlier")
    old.begin_job("001abc", Request(prompt=prompt, size="4K"), "m")
    plan = type("Plan", (), {"request": Request(prompt=prompt, size="4K"), "job_id": "001abc",
                             "settings": type("S", (), {"model": "m", "provider": "sim"})()})()
    old.finish_job(_empty_result(plan, f"failed: {prompt}"), "failed")
    old.close()
    now = Store(tmp_path, session="now")
    try:
        page = stale.update_html(now, 1.0)
    finally:
        now.close()
    body = page.split("<script>", 1)[1].rsplit("</script>", 1)[0]
    assert "<" not in body and ">" not in body.replace("=>", "") and "&" not in body
    states = json.loads(body.split("var states = ", 1)[1].split(";\n", 1)[0])
    assert prompt in states["001abc"]["text"] and states["001abc"]["status"] == "failed"


def test_queued_only_when_really_waiting_and_the_simulator_stamp_counts_calls(home):
    """A job not yet started says 'starting' unless the concurrency limit is full (it said
    'queued behind other jobs' for every job); a simulated image counts calls with its prompt,
    not 'attempts' that a caption would contradict."""
    from dataclasses import replace

    from nbp_jupyter import api, display
    from nbp_jupyter.jobs import Job, session
    from nbp_jupyter.sim.images import stamp_lines

    request, settings, _ = api.prepare("a kite", provider="sim")
    alone = Job("001aaa", request, settings)
    assert display.status_text(alone, None, 1.0).startswith("1K · 0:00")
    assert display.job_word(alone) == "starting"
    busy = Job("002bbb", request, settings)
    busy.status = "running"
    session().jobs[busy.id] = busy
    full = Job("003ccc", request, replace(settings, max_concurrency=1))
    try:
        assert "queued behind 1 running jobs" in display.status_text(full, None, 1.0)
        assert display.job_word(full) == "queued"
    finally:
        del session().jobs[busy.id]  # never submitted: nothing for the session to wait for
    assert not any("attempt" in line for line in stamp_lines("a kite", "1K", 1024, 1024, 3))


def test_refine_underscore_waits_for_a_job_still_running(ip):
    """`--refine _` right after a cell that is still drawing refined the image before it."""
    ip.run_cell_magic("nbp", "--wait --out first", "a red fox")
    ip.run_line_magic("config", "Nbp.time_scale = 1")  # the next one runs for a while
    ip.run_cell_magic("nbp", "--out slow", "a blue fox")
    slow = ip.user_ns["slow"]
    try:
        assert not slow.done()
        started = len(nbp.jobs.session().jobs)
        with pytest.raises(UsageError, match=f"job {slow.id} is still running") as caught:
            ip.run_cell_magic("nbp", "--refine _", "darker")
        assert "\n" not in str(caught.value) and len(nbp.jobs.session().jobs) == started
    finally:
        slow.cancel()


def test_failed_jobs_say_why_in_the_history_and_in_show(ip, monkeypatch, make_sim):
    """%nbp_history said only 'failed' and %nbp_show 'has no image on disk (failed)': no
    magic told the user why a job failed."""
    import html

    from nbp_jupyter.magics import REASON_CHARS
    from nbp_jupyter.timefmt import short

    server = make_sim(profile="ideal", time_scale=0.01, script="blocked")
    failed = nbp.generate("a blocked kite", provider="gemini", base_url=server.url,
                          api_key="g", time_scale=0.01)
    assert not failed.success and "blocked" in failed.error
    reason = short(f"failed: {failed.error}", REASON_CHARS)
    history = _html_of(ip, monkeypatch, "nbp_history", "--all").outputs[0].data
    assert f"<td>{html.escape(reason)}</td>" in history["text/html"]
    assert reason in history["text/plain"] and "a blocked kite" in history["text/plain"]
    card = _html_of(ip, monkeypatch, "nbp_show", failed.job_id).outputs[-1].data
    assert failed.error in card["text/plain"]
    assert html.escape(failed.error) in card["text/html"]


def test_a_gateways_markup_in_an_error_stays_text(ip, monkeypatch, home):
    """An error line carrying a gateway's HTML would run as markup in the history and in
    %nbp_show, instead of reading as the text it is."""
    from nbp_jupyter.jobs import _empty_result
    from nbp_jupyter.store import Store
    from nbp_jupyter.types import Request

    markup = "HTTP 502: <img src=x onerror=alert(1)><b>bad gateway</b>"
    old = Store(home, session="earlier")
    old.begin_job("001bad", Request(prompt="a kite", size="1K"), "m")
    plan = type("Plan", (), {"request": Request(prompt="a kite", size="1K"), "job_id": "001bad",
                             "settings": type("S", (), {"model": "m", "provider": "sim"})()})()
    old.finish_job(_empty_result(plan, markup), "failed")
    old.close()
    history = _html_of(ip, monkeypatch, "nbp_history", "--all").outputs[0].data["text/html"]
    card = _html_of(ip, monkeypatch, "nbp_show", "001bad").outputs[-1].data["text/html"]
    for page in (history, card):
        assert "&lt;img src=x onerror=alert(1)&gt;&lt;b&gt;bad gateway" in page
        assert "<img src=x" not in page and "<b>bad" not in page


def test_a_done_job_whose_file_is_gone_still_says_so(ip):
    """%nbp_show of a finished job whose image was deleted must say the file is missing,
    not show an empty card."""
    import os

    ip.run_cell_magic("nbp", "--wait --out j", "a deleted kite")
    os.remove(ip.user_ns["j"].result().image_path)
    with pytest.raises(UsageError, match="has no image on disk \\(done\\)"):
        ip.run_line_magic("nbp_show", ip.user_ns["j"].id)


def test_the_text_status_line_names_the_state_as_the_html_does(ip):
    """A text front end read '[queued]' and '[fell_back]' where the HTML said 'starting' and
    'fell back'."""
    from nbp_jupyter import api, live
    from nbp_jupyter.jobs import Job

    ip.run_cell_magic("nbp", "--wait --out j", "a kite")
    view = live.view_for(ip.user_ns["j"].id)
    request, settings, _ = api.prepare("another kite", provider="sim")
    fresh = Job("009new", request, settings)
    fallen = Job("009old", request, settings)
    fallen.status = "fell_back"
    for job, word in ((fresh, "starting"), (fallen, "fell back")):
        bundle = view.status_bundle(job)
        assert f">{word}</b>" in bundle["text/html"]
        assert bundle["text/plain"].startswith(f"[{word}] "), bundle["text/plain"]


@pytest.mark.parametrize("line, instead", [("nbp_config size=2K", "%config Nbp.size"),
                                           ("nbp_jobs --all", "%nbp_show ID")])
def test_magics_without_options_refuse_extra_words(ip, line, instead):
    """`%nbp_config size=2K` or `%nbp_jobs --all` did nothing with the words, so the user
    believed a setting or filter had taken effect."""
    magic, rest = line.split(" ", 1)
    with pytest.raises(UsageError, match=f"%{magic} takes no arguments, got '{rest}'") as caught:
        ip.run_line_magic(magic, rest)
    assert instead in str(caught.value) and "\n" not in str(caught.value)
