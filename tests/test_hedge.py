"""Hedging against the simulator: a slow call gets the next size down beside it; first image wins."""

from __future__ import annotations

import pytest

import nbp_jupyter as nbp
from nbp_jupyter import pricing

SCALE = 0.01  # 20 simulated seconds play in 0.2 s


def run(server, **kw):
    return nbp.generate("a heron at dawn", size="4K", provider="gemini", base_url=server.url,
                        api_key="test-key", time_scale=SCALE, **kw)


def outcomes(result):
    return [(a.resolution, a.outcome, a.billed) for a in result.attempts]


def test_a_hung_call_loses_to_its_hedge(home, make_sim):
    server = make_sim(profile="ideal", time_scale=SCALE, script="hang, ok:10s")
    result = run(server, hedge=20)
    assert result.success and result.resolution == "2K" and result.downgraded
    assert outcomes(result) == [("4K", "cancelled", "unknown"), ("2K", "ok", "yes")]
    assert result.attempts[0].detail.startswith("stopped: the 2K call beside it delivered first")
    assert result.cost_usd == pytest.approx(pricing.image_price(result.model, "2K"), abs=0.001)
    assert result.cost_unknown_usd == pytest.approx(pricing.image_price(result.model, "4K"))
    assert [e["size"] for e in server.log] == ["4K", "2K"]


def test_the_main_call_still_wins_when_it_lands_first(home, make_sim):
    server = make_sim(profile="ideal", time_scale=SCALE, script="ok:60s, ok:100s")
    result = run(server, hedge=20)
    assert result.success and result.resolution == "4K"
    assert outcomes(result) == [("4K", "ok", "yes"), ("2K", "cancelled", "unknown")]
    assert result.cost_unknown_usd == pytest.approx(pricing.image_price(result.model, "2K"))


def test_no_hedge_when_the_call_is_quick(home, make_sim):
    server = make_sim(profile="ideal", time_scale=SCALE, script="ok:5s")
    result = run(server, hedge=True)
    assert outcomes(result) == [("4K", "ok", "yes")] and len(server.log) == 1


def test_when_both_fail_the_policy_carries_on_from_the_lower_size(home, make_sim):
    """The main 4K fails after the hedge started, the 2K hedge fails too: next is 2K again."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="500:60s, 500:5s, ok:5s")
    result = run(server, hedge=20)
    assert outcomes(result) == [("4K", "server_error", "no"), ("2K", "server_error", "no"),
                                ("2K", "ok", "yes")]
    assert result.resolution == "2K"


def test_a_hedge_never_passes_the_concurrency_limit(home, make_sim):
    """With every slot taken the hedge is skipped, not queued behind its own job."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="hang")
    result = run(server, hedge=20, timeout=60, retries=0, fallback="1K", max_concurrency=1)
    assert [a.resolution for a in result.attempts] == ["4K", "1K"]  # no parallel 1K at 20 s
    assert server.max_in_flight == 1


def test_cancel_during_a_hedge_stops_both_calls(home, make_sim):
    server = make_sim(profile="ideal", time_scale=SCALE, script="hang, hang")
    job = nbp.submit("a heron", size="4K", provider="gemini", base_url=server.url,
                     api_key="test-key", time_scale=SCALE, hedge=20)
    import time
    while len(server.log) < 2:  # both on the wire
        time.sleep(0.01)
    assert job.status == "hedging"
    from nbp_jupyter import display
    line = display.status_html(job, None, SCALE, False)
    assert "hedging</b>" in line and "4K is slow: 2K is trying beside it" in line
    job.cancel()
    result = job.result(timeout=10)
    assert outcomes(result) == [("4K", "cancelled", "unknown"), ("2K", "cancelled", "unknown")]
    assert all("cancelled by you" in a.detail for a in result.attempts)
    deadline = time.monotonic() + 5
    while server.app.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.app.in_flight == 0


def test_hedge_must_be_a_flag_or_seconds(home):
    with pytest.raises(nbp.ConfigError, match="hedge must be"):
        nbp.submit("x", provider="sim", hedge=-5)


def test_a_due_hedge_takes_the_next_free_slot_before_queued_jobs(home, make_sim):
    """At full load a hung call still gets its hedge: the next slot to come free goes to it,
    not to a job that has not started (else hedging does nothing when it is most needed)."""
    server = make_sim(profile="ideal", time_scale=SCALE,
                      script="hang, ok:40s, ok:10s, ok:5s, ok:5s")
    handles = [nbp.submit(f"scene {i}", size="4K", provider="gemini", base_url=server.url,
                          api_key="test-key", time_scale=SCALE, hedge=20, timeout=200,
                          max_concurrency=2) for i in range(3)]
    results = [h.result() for h in handles]
    hung = next(r for r in results if r.attempts[0].outcome != "ok")
    assert outcomes(hung) == [("4K", "cancelled", "unknown"), ("2K", "ok", "yes")]
    assert all(r.success for r in results) and len(server.log) == 4


def test_a_hung_4k_call_is_hedged_with_4k_while_4k_is_healthy(home, make_sim):
    """hedge=True keeps the size asked for: the hedge beside a hung 4K call is another 4K."""
    server = make_sim(profile="ideal", time_scale=0.002, script="hang, ok:10s")
    result = nbp.generate("a heron at dawn", size="4K", provider="gemini", base_url=server.url,
                          api_key="test-key", time_scale=0.002, hedge=True)
    assert result.success and result.resolution == "4K" and not result.downgraded
    assert outcomes(result) == [("4K", "cancelled", "unknown"), ("4K", "ok", "yes")]
    assert [e["size"] for e in server.log] == ["4K", "4K"]


def test_when_both_land_the_conversation_goes_on_from_the_image_shown(home, make_sim,
                                                                       monkeypatch):
    """With both calls landing, a refine continued from the hedge's picture, not the one shown."""
    import threading

    from nbp_jupyter import checks, store

    both, main_kept = threading.Barrier(2, timeout=10), threading.Event()
    check, end_attempt = checks.check, store.Store.end_attempt

    def side_by_side(parsed, request, asked, model):
        both.wait()  # the two answers are checked together...
        if asked != "4K":
            main_kept.wait(10)  # ...and the hedge's is kept after the main call's
        return check(parsed, request, asked, model)

    def kept(self, job_id, attempt, image_path=None, turn=None):
        end_attempt(self, job_id, attempt, image_path, turn)
        if turn is not None and attempt.resolution == "4K":
            main_kept.set()
    monkeypatch.setattr(checks, "check", side_by_side)
    monkeypatch.setattr(store.Store, "end_attempt", kept)
    server = make_sim(profile="ideal", time_scale=SCALE, script="ok:60s, ok:40s")
    job = nbp.submit("a heron at dawn", size="4K", provider="gemini", base_url=server.url,
                     api_key="test-key", time_scale=SCALE, hedge=20)
    result = job.result(30)
    assert [a.outcome for a in result.attempts] == ["ok", "ok"]  # the case under test
    assert result.resolution == "4K"
    assert nbp.conversation_of(job)[-1].image_path == str(result.image_path)
