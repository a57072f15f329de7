"""Pure decisions of the retry/fallback policy: no network, no clock."""

from __future__ import annotations

import pytest

from nbp_jupyter.policy import (BREAKER_COOLDOWN_S, BREAKER_FAILURES, DEFAULT_TIMEOUTS,
                                HEDGE_AFTER, PATIENCE_S, SAME_SIZE_HEDGE_AFTER, Past, Regime,
                                RetryPolicy, Rung, Seen, Stop, Try, build_ladder, decide, hedge,
                                regime)

CUT_4K = 200.0  # 0.8 x the published 4K P99 (250 s), at the published pace
CUT_2K = 144.0  # 0.8 x 180 s
KNOWN = Regime(pace=1.0)  # the session's successes run at the published speed


def policy(size="4K", fallback=True, **kw):
    return RetryPolicy(ladder=build_ladder(size, fallback), **kw)


def fail(rung, outcome, elapsed=2.0, timeout=660.0, retry=None, started=0.0):
    return Past(rung, outcome, started, elapsed, timeout, retry)


def test_attempts_are_cut_at_the_published_p99_once_the_pace_is_known():
    """A 4K call gets 200 s when the session's calls run at the published speed (past the
    P95 of healthy calls, well short of the server's 600 s limit); 400 s before anything was
    seen."""
    assert decide(policy(), [], now=0.0, regime=KNOWN) == Try(0, 0.0, CUT_4K, "first attempt")
    assert decide(policy(), [], now=0.0).timeout_s == 2 * CUT_4K
    assert decide(policy(timeout_margin=None), [], now=0.0).timeout_s == DEFAULT_TIMEOUTS["4K"]


def test_fast_failure_retries_same_size_with_growing_jittered_backoff():
    """Quick 503s are retried at the same size, waiting longer each time."""
    p = policy(wait_initial=2.0, wait_jitter=1.0)
    first = decide(p, [fail(0, "overloaded")], now=2.0, jitter=0.5)
    second = decide(p, [fail(0, "overloaded"), fail(0, "overloaded")], now=6.0, jitter=0.5)
    assert isinstance(first, Try) and first.rung == 0 and first.wait_s == pytest.approx(2.5)
    assert second.rung == 0 and second.wait_s == pytest.approx(4.5)


def test_backoff_is_capped():
    """Backoff never exceeds wait_max (+ jitter)."""
    p = policy(wait_initial=10.0, wait_max=15.0, wait_jitter=0.0, attempts={"4K": 10})
    history = [fail(0, "overloaded")] * 5
    assert decide(p, history, now=50.0).wait_s == 15.0


def test_server_delay_wins_over_backoff():
    """A 429's RetryInfo / Retry-After delay is used as is."""
    decision = decide(policy(), [fail(0, "rate_limited", retry=47.0)], now=1.0, jitter=0.9)
    assert decision.rung == 0 and decision.wait_s == 47.0


def test_overlong_server_delay_steps_down_instead_of_idling():
    """If the server wants 20 minutes, a smaller size now is the better bet."""
    decision = decide(policy(max_server_wait=300.0), [fail(0, "rate_limited", retry=1200.0)], now=1.0)
    assert decision.rung == 1 and decision.wait_s == 2.0


def test_one_hang_at_a_healthy_size_is_retried_there_at_once():
    """Independent failures: a single 4K hang says nothing about the next try, so the job
    asks for 4K again right away instead of giving the user a 2K image."""
    decision = decide(policy(), [fail(0, "timeout", elapsed=CUT_4K, timeout=CUT_4K)],
                      now=CUT_4K, regime=KNOWN)
    assert decision.rung == 0 and decision.wait_s == 0.0 and decision.timeout_s == CUT_4K


def test_slow_failure_can_still_step_down_when_asked():
    """step_down_on_slow_failure=True keeps the old rule: a 600 s 504 at 4K goes to 2K."""
    p = policy(step_down_on_slow_failure=True)
    decision = decide(p, [fail(0, "server_error", elapsed=600.0)], now=600.0)
    assert decision.rung == 1 and decision.wait_s == 0.0 and "slow" in decision.reason


def _wave(n=BREAKER_FAILURES, outcome="timeout", resolution="4K", ended=1000.0, timeout=CUT_4K):
    return [Seen(resolution, outcome, ended - i, timeout, timeout) for i in reversed(range(n))]


def test_a_wave_of_failures_opens_the_size_for_every_job():
    """Overload waves: when the session's last 4K attempts all failed, 4K is failing now;
    one success among them, or older evidence, or too few failures, and it is not."""
    assert regime(_wave(), now=1010.0).failing == {"4K": pytest.approx(BREAKER_COOLDOWN_S - 10)}
    assert regime(_wave(BREAKER_FAILURES - 1), now=1010.0).failing == {}
    assert regime(_wave() + [Seen("4K", "ok", 1001.0, 120.0)], now=1010.0).failing == {}
    assert regime(_wave(), now=1000.0 + BREAKER_COOLDOWN_S + 1).failing == {}  # half-open
    assert regime(_wave(), 1010.0, policy(breaker_failures=None)).failing == {}


def test_a_run_of_failures_that_peak_hours_give_by_chance_is_no_wave():
    """Peak hours (4K succeeds about 30 %, independently): the six or eight failures in a row
    that happen there by chance do not hold every job back; a wave's longer run does."""
    for n in (6, 8):
        mixed = _wave(n, outcome="overloaded")[:n // 2] + _wave(n)[n // 2:]
        assert regime(mixed, now=1010.0).failing == {}
    wave = [Seen("4K", "ok", 980.0, 120.0)] + _wave(12, outcome="overloaded")
    assert regime(wave, now=1010.0).failing == {"4K": pytest.approx(BREAKER_COOLDOWN_S - 10)}


def test_in_a_wave_a_failed_job_steps_down_and_a_new_one_waits_to_probe():
    """Overload waves: a job that already waited steps down to 2K at once; a fresh job holds
    its 4K request until the breaker half-opens, then probes 4K."""
    wave = regime(_wave(), now=1010.0)
    old = decide(policy(), [fail(0, "timeout", elapsed=CUT_4K, timeout=CUT_4K)],
                 now=PATIENCE_S, regime=wave)
    assert old.rung == 1 and "failing for every job" in old.reason
    fresh = decide(policy(), [], now=0.0, regime=wave)
    assert fresh.rung == 0 and fresh.wait_s == pytest.approx(BREAKER_COOLDOWN_S - 10)
    impatient = decide(policy(patience_s=0.0), [], now=0.0, regime=wave)
    assert impatient.rung == 1 and impatient.wait_s == 0.0


def test_when_4k_and_2k_both_fail_for_everyone_1k_is_next():
    """Outage: the ladder skips every size that is failing for all jobs now."""
    both = regime(_wave() + _wave(resolution="2K", timeout=CUT_2K), now=1010.0)
    decision = decide(policy(patience_s=0.0), [], now=0.0, regime=both)
    assert decision.rung == 2


def test_everyone_slow_moves_the_cut_out_and_forgives_early_cuts():
    """Everyone slow (January 2026): successes at 3.5x the published times move the 4K cut
    to the ceiling, and calls cut at 300 s before that was known do not count as a wave."""
    slow_ok = [Seen("2K", "ok", 990.0 + i, 65.0 * 3.5) for i in range(3)]
    seen = _wave() + slow_ok
    slow = regime(seen, now=1010.0)
    assert slow.pace == pytest.approx(3.5) and slow.failing == {}
    assert decide(policy(), [], now=0.0, regime=slow).timeout_s == DEFAULT_TIMEOUTS["4K"]
    assert regime(_wave(), now=1010.0).pace is None  # failures alone say nothing of pace


def test_without_fallback_a_timeout_is_retried_at_the_same_size():
    """fallback=False keeps the size; the retry budget decides."""
    p = policy(fallback=False)
    assert decide(p, [fail(0, "timeout", elapsed=660.0)], now=660.0).rung == 0
    three = [fail(0, "timeout", elapsed=660.0)] * 3
    assert isinstance(decide(p, three, now=2000.0), Stop)


def test_exhausted_rung_steps_down_then_gives_up():
    """4 quick failures at 4K → 2K (3 if two were slow); 2 at 2K → 1K; 3 at 1K → stop."""
    p = policy()
    h = [fail(0, "overloaded")] * 3
    assert decide(p, h, now=10).rung == 0  # three quick 503s: one more 4K try
    h += [fail(0, "overloaded")]
    assert decide(p, h, now=12).rung == 1
    h += [fail(1, "overloaded")] * 2
    assert decide(p, h, now=20).rung == 2
    h += [fail(2, "overloaded")] * 3
    stop = decide(p, h, now=30)
    assert isinstance(stop, Stop) and "gave up" in stop.reason


def test_a_quick_extra_try_only_at_the_size_asked_and_only_when_asked_for():
    """The fourth 4K try is for a job with at most one slow failure there; two slow ones,
    quick_extra_tries=0 (what retries=N sets) and a smaller rung get no extra try."""
    cut = fail(0, "timeout", elapsed=CUT_4K, timeout=CUT_4K)
    late_500 = fail(0, "server_error", elapsed=CUT_4K * 0.6, timeout=CUT_4K)
    one_slow = [cut, fail(0, "overloaded"), fail(0, "overloaded")]
    assert decide(policy(), one_slow, now=CUT_4K + 10, regime=KNOWN).rung == 0
    assert decide(policy(quick_extra_tries=0), one_slow, now=CUT_4K + 10,
                  regime=KNOWN).rung == 1
    two_slow = [cut, late_500, fail(0, "overloaded")]
    assert decide(policy(), two_slow, now=2 * CUT_4K, regime=KNOWN).rung == 1
    at_2k = [fail(0, "overloaded")] * 4 + [fail(1, "overloaded")] * 2
    assert decide(policy(), at_2k, now=20).rung == 2


@pytest.mark.parametrize("outcome", ["blocked", "auth", "bad_request", "cancelled"])
def test_final_outcomes_are_never_retried(outcome):
    """Bad keys, invalid requests and safety blocks stop at once."""
    assert isinstance(decide(policy(), [fail(0, outcome)], now=1.0), Stop)


def test_success_stops():
    assert decide(policy(), [fail(0, "ok")], now=100.0) == Stop("done")


def test_deadline_skips_a_size_that_cannot_finish():
    """With 100 s left, a 4K try (median 120 s) is not started; 2K (65 s) is."""
    p = policy(deadline=300.0)
    decision = decide(p, [fail(0, "overloaded", elapsed=2.0)], now=200.0)
    assert decision.rung == 1
    assert decision.timeout_s <= 100.0


def test_deadline_caps_the_attempt_timeout():
    """The attempt's timeout never runs past the job deadline."""
    decision = decide(policy(deadline=200.0), [], now=0.0)
    assert decision.rung == 0 and decision.timeout_s == 200.0


def test_deadline_too_close_gives_up():
    """No attempt is started when even 1K's median does not fit."""
    stop = decide(policy(deadline=100.0), [fail(0, "overloaded")], now=80.0)
    assert isinstance(stop, Stop) and stop.reason.startswith("deadline")


def test_explicit_ladder_with_a_fallback_model():
    """fallback may name sizes and models: '2K, gemini-2.5-flash-image@1K'."""
    ladder = build_ladder("4K", "2K, gemini-2.5-flash-image@1K")
    assert ladder == (Rung("4K"), Rung("2K"), Rung("1K", "gemini-2.5-flash-image"))
    with pytest.raises(ValueError):
        build_ladder("4K", "2K, other@8K")


def test_fallback_may_name_another_provider():
    """'openai:4K' is the same step on another endpoint; a bare 'openai:' keeps the size."""
    ladder = build_ladder("4K", "openai:, 2K, openai:my-model@1K")
    assert ladder == (Rung("4K"), Rung("4K", provider="openai"), Rung("2K"),
                      Rung("1K", "my-model", "openai"))
    assert [r.label() for r in ladder] == ["4K", "openai:4K", "2K", "openai:my-model@1K"]
    with pytest.raises(ValueError):
        build_ladder("4K", "openai:8K")


def test_backoff_base_can_differ_per_size():
    """The seeds' schedule (60 s at 4K, 30 s at 2K) is expressible for comparison."""
    p = policy(wait_initial={"4K": 60.0, "2K": 30.0}, wait_jitter=0.0, wait_max=1e9)
    assert decide(p, [fail(0, "overloaded")], now=1).wait_s == 60.0
    assert decide(p, [fail(0, "overloaded")] * 2, now=1).wait_s == 120.0


def test_learned_timeout_needs_samples_and_follows_the_ledger_pace():
    """Too few samples: nothing learned; otherwise the cut at the ledger's pace, within
    the published cut and the ceiling."""
    from nbp_jupyter.policy import learned_timeout

    assert learned_timeout("4K", [100.0] * 19) is None
    assert learned_timeout("4K", [100.0] * 30) == CUT_4K  # faster than published: no tighter
    assert learned_timeout("4K", [180.0] * 30) == pytest.approx(CUT_4K * 1.5)
    assert learned_timeout("4K", [500.0] * 30) == DEFAULT_TIMEOUTS["4K"]


def test_earlier_sessions_seed_the_first_burst_cut():
    """A session's first calls, before it has seen anything, get the cut the ledger's
    earlier sessions learned; pinned policies ignore it; nothing passes the ceiling."""
    cut = decide(policy(), [], 0.0, learned={"4K": 450.0}, regime=KNOWN).timeout_s
    assert cut == 450.0
    assert decide(policy(), [], 0.0, learned={"4K": 9999.0}).timeout_s == DEFAULT_TIMEOUTS["4K"]
    pinned = policy(learn_timeouts=False)
    assert decide(pinned, [], 0.0, learned={"4K": 450.0}, regime=KNOWN).timeout_s == CUT_4K


def test_no_hedge_unless_asked_or_without_a_lower_rung():
    main = decide(policy(), [], now=0.0)
    assert hedge(policy(), main, now=0.0) is None
    assert hedge(policy(fallback=False, hedge_after=HEDGE_AFTER), main, now=0.0) is None


def test_hedge_starts_the_next_size_at_the_published_p99():
    """Before the session knows its pace (4K cut at 500 s), a 4K call still running at 250 s
    gets a 2K try beside it, with the 2K timeout; once calls run at the published speed the
    cut at 250 s and a retry take the hedge's place."""
    p = policy(hedge_after=HEDGE_AFTER)
    main = decide(p, [], now=0.0)
    assert hedge(p, main, now=0.0) == Try(1, 250.0, 2 * CUT_2K,
                                          "hedge: 4K still running after 250 s")
    known = decide(p, [], now=0.0, regime=KNOWN)
    assert hedge(p, known, now=0.0, regime=KNOWN) is None


def test_hedge_never_outlasts_the_deadline_or_the_main_timeout():
    """With 170 s left at the hedge, 2K (median 65 s) fits and its timeout is cut to fit."""
    p = policy(hedge_after=HEDGE_AFTER, deadline=450.0)
    main = decide(p, [], now=30.0)
    assert hedge(p, main, now=30.0).timeout_s == pytest.approx(450.0 - 30.0 - 250.0)
    late = decide(p, [], now=150.0)  # at 400 s only 50 s are left: 1K's 45 s median fits
    assert hedge(p, late, now=150.0).rung == 2
    assert hedge(policy(hedge_after={"4K": 700.0}), main, now=0.0) is None


def test_a_healthy_size_is_hedged_with_itself_and_a_failing_one_with_the_next_size_down():
    """hedge=True keeps a 4K request at 4K while 4K works for others (a second 4K call beside
    one still out at the P95, 170 s, before the 250 s cut), and hedges with 2K in a wave."""
    p = policy(hedge_after=SAME_SIZE_HEDGE_AFTER, hedge_same_size=True)
    main = decide(p, [], now=0.0, regime=KNOWN)
    assert hedge(p, main, now=0.0, regime=KNOWN) == Try(0, 170.0, CUT_4K,
                                                        "hedge: 4K still running after 170 s")
    wave = Regime(pace=1.0, failing={"4K": 60.0})
    assert hedge(p, main, now=0.0, regime=wave) == Try(1, 170.0, CUT_2K,
                                                       "hedge: 4K still running after 170 s")
    alone = policy(fallback=False, hedge_after=SAME_SIZE_HEDGE_AFTER, hedge_same_size=True)
    assert hedge(alone, main, now=0.0, regime=KNOWN).rung == 0  # no lower size needed
    assert hedge(alone, main, now=0.0, regime=wave) is None  # nothing healthy to hedge with


def test_a_same_size_hedge_moves_with_the_pace_like_the_cut():
    """When everyone is slow the hedge waits as much longer as the cut does, so healthy slow
    calls are not doubled; before any success it waits for the unseen pace (4K 340 s)."""
    p = policy(hedge_after=SAME_SIZE_HEDGE_AFTER, hedge_same_size=True)
    slow = Regime(pace=3.5)
    main = decide(p, [], now=0.0, regime=slow)
    assert main.timeout_s == DEFAULT_TIMEOUTS["4K"]
    assert hedge(p, main, now=0.0, regime=slow).wait_s == pytest.approx(170.0 * 3.5)
    first = decide(p, [], now=0.0)
    assert hedge(p, first, now=0.0).wait_s == 340.0 and first.timeout_s == 2 * CUT_4K
    # the ledger's P99 hedge point is the cut itself: it must not push this hedge past it
    assert hedge(p, main, 0.0, learned_hedge={"4K": 700.0}, regime=slow) is not None


def test_a_slow_endpoint_is_hedged_later_never_earlier():
    """Own successes set the hedge point at their P99, floored at the published P99."""
    from nbp_jupyter.policy import learned_hedge

    assert learned_hedge("4K", [400.0] * 19) is None
    assert learned_hedge("4K", [100.0] * 30) == HEDGE_AFTER["4K"]
    assert learned_hedge("4K", [300.0] * 29 + [420.0]) == 420.0
    p, slow = policy(hedge_after=HEDGE_AFTER), Regime(pace=2.5)  # the cut moves out to 500 s
    main = decide(p, [], now=0.0, regime=slow)
    assert hedge(p, main, 0.0, learned_hedge={"4K": 420.0}, regime=slow).wait_s == 420.0
    assert hedge(p, main, 0.0, learned_hedge={"4K": 700.0}, regime=slow) is None  # past the cut
    pinned = policy(hedge_after={"4K": 60.0}, learn_hedge=False)
    assert hedge(pinned, main, 0.0, learned_hedge={"4K": 420.0}, regime=slow).wait_s == 60.0


def test_a_configured_fallback_list_fits_each_request():
    """Nbp.fallback = '2K, 1K' applied to a 1K request leaves nothing to climb up to."""
    from nbp_jupyter.policy import trim_ladder

    assert trim_ladder("4K", "2K, 1K") == "2K, 1K"
    assert trim_ladder("2K", "2K, 1K") == "1K"  # no plain repeat of the size asked
    assert trim_ladder("1K", "2K, 1K") is False
    assert trim_ladder("2K", "openai:, m@2K, 4K, 1K") == "openai:, m@2K, 1K"
    assert trim_ladder("4K", True) is True and trim_ladder("4K", False) is False
    assert trim_ladder("4K", "2K, 9K") == "2K, 9K"  # left for prepare() to refuse clearly
