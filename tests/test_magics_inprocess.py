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
                   "--deadline", "--interpolate", "--hedge", "--no-hedge"):
        assert option in doc


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


def test_unknown_job_ids_are_usage_errors(ip):
    with pytest.raises(UsageError, match="no job zzz"):
        ip.run_line_magic("nbp_wait", "zzz")


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
    response = httpx.post(server.url + "/v1beta/models/m:generateContent",
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
    view.ticker.result(timeout=30)  # ends once both results were shown
    assert all(job.done() for job in jobs) and view._final == {}
    with capture_output() as captured:
        ip.run_line_magic("nbp_wait", " ".join(job.id for job in jobs))
    [html] = [o.data["text/html"] for o in captured.outputs if "text/html" in o.data][-1:]
    assert html.count("<img") == 2 and "SIMULATED" in html


def test_the_status_line_expects_the_size_under_way(ip):
    """After a fall back to 2K the line promises 2K's times, not 4K's."""
    import time

    from nbp_jupyter import display, live
    from nbp_jupyter.jobs import session
    from nbp_jupyter.policy import PUBLISHED_LATENCY

    ip.run_cell_magic("nbp", "--size 1K --wait", "start the simulator")
    [server] = session().simulators.servers()
    server.set_script("503, 503, 503, hang")  # 4K fails three times, then 2K hangs while we look
    ip.run_cell_magic("nbp", "--size 4K --out big", "a storm")
    job = ip.user_ns["big"]
    deadline = time.monotonic() + 20
    while job.attempt < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    text = live.view_for(job.id).bundle()["text/plain"]
    job.cancel()
    low, high = (display.clock(s * 0.01) for s in PUBLISHED_LATENCY["2K"])
    assert "2K · attempt 4" in text and f"usually {low}–{high}" in text, text


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
    server.set_script("hang, ok")  # a fixed 600 s timeout: the hedge at 250 s comes first
    ip.run_cell_magic("nbp", "--size 4K --timeout 600 --wait --out h", "hedged by default")
    assert [(x.resolution, x.outcome) for x in ip.user_ns["h"].result().attempts] == [
        ("4K", "cancelled"), ("2K", "ok")]
    server.set_script("ok:300s")  # past the 250 s hedge point, and still no hedge
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
