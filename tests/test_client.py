"""The core client against the simulator over real sockets: attempts, waits, money, files."""

from __future__ import annotations

import time

import pytest
from PIL import Image

import nbp_jupyter as nbp
from nbp_jupyter import pricing, sizes

SCALE = 0.01  # ideal-profile 4K (20 s) plays in 0.2 s; a 30 s timeout in 0.3 s


def run(server, provider="gemini", **kw):
    kw.setdefault("time_scale", server.config.time_scale)
    return nbp.generate(kw.pop("prompt", "a lighthouse in a storm"), provider=provider,
                        base_url=server.url, api_key="test-key", **kw)


@pytest.mark.parametrize("provider", ["gemini", "openai"])
@pytest.mark.parametrize("size,aspect", [("1K", "1:1"), ("2K", "16:9"), ("4K", "3:4")])
def test_success_at_each_size(home, make_sim, provider, size, aspect):
    """One attempt, the documented pixels, billed at list price, the file on disk."""
    server = make_sim(profile="ideal", time_scale=SCALE)
    result = run(server, provider, size=size, aspect=aspect)
    assert result.success and result.error is None
    assert (result.width, result.height) == sizes.pixels(size, aspect)
    assert result.resolution == size and not result.downgraded
    assert [a.outcome for a in result.attempts] == ["ok"]
    assert result.attempts[0].billed == "yes"
    assert result.cost_usd == pytest.approx({"gemini": {"1K": 0.134, "2K": 0.134, "4K": 0.24},
                                             "openai": {"1K": 0.04, "2K": 0.14, "4K": 0.24}}
                                            [provider][size], abs=0.001)
    assert result.cost_unknown_usd == 0
    assert result.image_path.is_file() and result.image_path.is_relative_to(home)
    with Image.open(result.image_path) as image:
        assert image.size == (result.width, result.height)
    assert result.simulated


# kind in the script -> (outcome, http status, billed) per provider
FAILURES = {
    "503": ("overloaded", 503, "no"),
    "500": ("server_error", 500, "no"),
    "504:1": ("server_error", 504, "no"),
    "502:1": ("server_error", 502, "no"),
    "hang": ("timeout", None, "unknown"),
    "drip": ("timeout", None, "unknown"),
    "disconnect": ("connection", None, "unknown"),
    "truncated": ("bad_response", 200, "unknown"),
    "html200:0": ("bad_response", 200, "unknown"),
}


@pytest.mark.parametrize("provider", ["gemini", "openai"])
@pytest.mark.parametrize("item", list(FAILURES))
def test_each_retriable_failure_is_recorded_then_retried(home, make_sim, provider, item):
    """A failure becomes one typed attempt with honest billing; the retry then succeeds."""
    server = make_sim(profile="ideal", time_scale=SCALE, script=f"{item}, ok")
    result = run(server, provider, size="1K", timeout=30)
    outcome, status, billed = FAILURES[item]
    first, second = result.attempts
    assert (first.outcome, first.http_status, first.billed) == (outcome, status, billed)
    assert second.outcome == "ok" and result.success
    expected_unknown = pricing.image_price(first.model, "1K") if billed == "unknown" else 0.0
    assert result.cost_unknown_usd == pytest.approx(expected_unknown)
    assert first.detail and "\n" not in first.detail


def test_no_image_200_is_retried_gemini(home, make_sim):
    """A 200 with finishReason NO_IMAGE is a typed failure, not billed, and retried."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="no_image, ok")
    result = run(server, size="1K")
    assert [(a.outcome, a.billed) for a in result.attempts] == [("bad_response", "no"), ("ok", "yes")]
    assert "NO_IMAGE" in result.attempts[0].detail


@pytest.mark.parametrize("provider,header", [("gemini", "RetryInfo"), ("openai", "retry-after-ms")])
def test_server_given_delay_is_honoured(home, make_sim, provider, header):
    """The wait before the retry is exactly what the 429 asked for."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="429:7s, ok")
    result = run(server, provider)
    assert [a.outcome for a in result.attempts] == ["rate_limited", "ok"]
    assert result.attempts[1].waited_s == pytest.approx(7.0)
    assert result.attempts[0].http_status == 429


@pytest.mark.parametrize("provider", ["gemini", "openai"])
@pytest.mark.parametrize("item", ["safety", "blocked"])
def test_safety_blocks_fail_at_once_unbilled(home, make_sim, provider, item):
    """A blocked prompt is not retried, costs nothing, and says why in one line."""
    server = make_sim(profile="ideal", time_scale=SCALE, script=f"{item}, ok")
    result = run(server, provider)
    assert not result.success
    assert [(a.outcome, a.billed) for a in result.attempts] == [("blocked", "no")]
    assert result.cost_usd == 0 and result.cost_unknown_usd == 0
    assert "rephrase" in result.error and "\n" not in result.error
    assert len(server.log) == 1


@pytest.mark.parametrize("provider,var", [("gemini", "GEMINI_API_KEY"), ("openai", "OPENAI_API_KEY")])
def test_bad_key_fails_at_once_with_the_env_var_to_fix(home, make_sim, provider, var):
    """A refused key is not retried; the error names the variable that holds the key."""
    server = make_sim(profile="ideal", time_scale=SCALE, api_key="the-right-one")
    result = run(server, provider)
    assert [a.outcome for a in result.attempts] == ["auth"]
    assert var in result.error
    assert "test-key" not in result.error and "the-right-one" not in result.error


def test_bad_request_is_not_retried(home, make_sim):
    """A 404 (wrong model) stops at once with a hint about the model name."""
    server = make_sim(profile="ideal", time_scale=SCALE)
    result = nbp.generate("x", provider="gemini", base_url=server.url + "/nope", api_key="k",
                          time_scale=SCALE)
    assert [a.outcome for a in result.attempts] == ["bad_request"]
    assert "NBP_MODEL" in result.error


def test_unknown_model_fails_at_once_naming_it(home, make_sim):
    """A mistyped model is one line naming it, after one attempt: no retries, no fallback."""
    server = make_sim(profile="ideal", time_scale=SCALE)
    result = run(server, model="gemini-3-pro-imagee", size="4K")
    assert not result.success
    assert [(a.outcome, a.http_status) for a in result.attempts] == [("bad_request", 404)]
    assert len(server.log) == 1
    assert "models/gemini-3-pro-imagee is not found" in result.error
    assert "\n" not in result.error


def test_4k_timeouts_fall_back_to_2k(home, make_sim):
    """4K attempts that hang past their timeout, three times, are followed by 2K; the result
    says so."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="hang, hang, hang, ok")
    result = run(server, size="4K", timeout=30)
    assert [(a.resolution, a.outcome) for a in result.attempts] == [
        ("4K", "timeout")] * 3 + [("2K", "ok")]
    assert result.requested == "4K" and result.resolution == "2K"
    assert result.downgraded and not result.silent_downgrade
    assert (result.width, result.height) == (2048, 2048)
    assert result.cost_unknown_usd == pytest.approx(3 * 0.24)
    assert [e["size"] for e in server.log] == ["4K", "4K", "4K", "2K"]


def test_fast_failures_at_4k_are_retried_at_4k_before_falling_back(home, make_sim):
    """Four quick 503s at 4K (a fourth try, as none of them cost minutes), then 2K: the
    ladder runs in order."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="503, 503, 503, 503, 503, ok")
    result = run(server, size="4K")
    assert [a.resolution for a in result.attempts] == ["4K", "4K", "4K", "4K", "2K", "2K"]
    assert result.resolution == "2K" and result.success


def test_no_fallback_gives_up_with_the_last_reason(home, make_sim):
    """fallback=False and retries=1: two 4K tries, then a one-line failure."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="503, 503, ok")
    result = run(server, size="4K", fallback=False, retries=1)
    assert not result.success and len(result.attempts) == 2
    assert "overloaded" in result.error and "gave up" in result.error
    assert result.image_path is None


def test_silent_downgrade_is_detected(home, make_sim):
    """4K asked, 2K delivered: resolution says 2K and silent_downgrade is set."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="downgrade")
    result = run(server, size="4K")
    assert result.success and result.resolution == "2K" and result.silent_downgrade
    assert "asked 4K" in result.attempts[0].detail
    assert result.cost_usd == pytest.approx(0.134, abs=0.001)  # billed by the 1120 tokens


def test_thought_drafts_are_skipped(home, make_sim):
    """The draft `thought` image is not taken for the answer."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="thought")
    result = run(server, size="2K")
    assert (result.width, result.height) == (2048, 2048)
    assert "draft" in result.attempts[0].detail


def test_drip_is_cut_by_the_wall_clock(home, make_sim):
    """A body that drips a byte every few seconds cannot outlive the attempt's timeout."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="drip")
    start = time.monotonic()
    result = run(server, size="1K", timeout=30, retries=0)
    assert [a.outcome for a in result.attempts] == ["timeout"]
    assert time.monotonic() - start < 1800 * SCALE / 2  # far from the drip's full length


def test_deadline_stops_before_an_attempt_that_cannot_finish(home, make_sim):
    """A 60 s deadline: 4K and 2K cannot finish, so 1K is tried until time runs out."""
    server = make_sim(profile="outage", time_scale=SCALE)
    result = run(server, size="4K", deadline=60, retries=50)
    assert not result.success
    assert {a.resolution for a in result.attempts} == {"1K"}
    assert "deadline" in result.error
    assert all(a.waited_s + a.elapsed_s < 60 for a in result.attempts)


def test_cancel_mid_flight_aborts_the_socket_and_records_unknown_cost(home, make_sim):
    """cancel() ends a hanging call at once; the attempt is cancelled and maybe billed."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="hang")
    job = nbp.submit("x", provider="gemini", base_url=server.url, api_key="k",
                     time_scale=SCALE, size="4K")
    for _ in range(200):
        if job.attempt == 1 and server.log:
            break
        time.sleep(0.01)
    assert job.cancel()
    result = job.result(timeout=5)
    assert job.status == "cancelled" and not result.success
    assert [(a.outcome, a.billed) for a in result.attempts] == [("cancelled", "unknown")]
    assert result.cost_unknown_usd == pytest.approx(0.24)
    rows = nbp.history()[0]
    assert rows["status"] == "cancelled" and rows["attempts"][0]["outcome"] == "cancelled"
    assert rows["attempts"][0]["billed"] == "unknown"
    assert rows["cost_unknown_usd"] == pytest.approx(0.24)


def test_cancel_while_the_request_is_built_costs_nothing(home, make_sim, tmp_path):
    """A cancel before the request left is not shown (or added up) as money maybe spent."""
    import os

    from nbp_jupyter.events import AttemptStarted

    server = make_sim(profile="ideal", time_scale=SCALE)
    refs = []
    for number in range(4):  # ~12 MB to base64 and JSON: the request takes a while to build
        refs.append(tmp_path / f"ref{number}.png")
        Image.frombytes("RGB", (1024, 1024), os.urandom(3 << 20)).save(refs[-1])

    def cancel_as_it_starts(job, event):
        if isinstance(event, AttemptStarted):  # the engine goes on to build the request
            job.cancel()

    job = nbp.submit("x", provider="gemini", base_url=server.url, api_key="k",
                     time_scale=SCALE, images=refs, listener=cancel_as_it_starts)
    result = job.result(timeout=10)
    assert [(a.outcome, a.billed) for a in result.attempts] == [("cancelled", "no")]
    assert "nothing is billed" in result.attempts[0].detail and result.cost_unknown_usd == 0
    row = nbp.history()[0]
    assert row["status"] == "cancelled" and row["cost_unknown_usd"] == 0
    assert [(a["outcome"], a["billed"]) for a in row["attempts"]] == [("cancelled", "no")]
    assert server.log == []


def test_ledger_matches_the_result_and_survives_a_new_process(home, make_sim):
    """Every attempt and cent is in SQLite, readable by a fresh Python process."""
    import json
    import subprocess
    import sys

    server = make_sim(profile="ideal", time_scale=SCALE, script="503, ok")
    result = run(server, size="2K")
    code = ("import json, nbp_jupyter as n; h = n.history(); "
            "print(json.dumps([{k: r[k] for k in ('id','status','cost_usd','image_path')} | "
            "{'outcomes': [a['outcome'] for a in r['attempts']]} for r in h]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**__import__('os').environ, "NBP_HOME": str(home)})
    [row] = json.loads(out.stdout)
    assert row == {"id": result.job_id, "status": "done", "cost_usd": result.cost_usd,
                   "image_path": str(result.image_path), "outcomes": ["overloaded", "ok"]}


def test_history_as_pandas_frames_of_jobs_and_attempts(home, make_sim):
    """to_pandas(): one row per job or per attempt, sums that match the results, real times."""
    import pandas as pd

    server = make_sim(profile="ideal", time_scale=SCALE, script="503, ok, blocked")
    done, blocked = run(server, prompt="first"), run(server, prompt="second")
    jobs = nbp.history().to_pandas()
    assert sorted(zip(jobs["status"], jobs["attempts"])) == [("done", 2), ("failed", 1)]
    assert jobs["cost_usd"].sum() == pytest.approx(done.cost_usd + blocked.cost_usd)
    assert isinstance(jobs["created"].iloc[0], pd.Timestamp)
    tries = nbp.history().to_pandas(attempts=True)
    assert sorted(tries["outcome"]) == ["blocked", "ok", "overloaded"]
    assert set(tries["prompt"]) == {"first", "second"} and (tries["requested"] == "1K").all()
    assert tries.groupby("outcome")["cost_usd"].sum()["ok"] == pytest.approx(done.cost_usd)


def test_many_jobs_in_flight_respect_the_concurrency_limit(home, make_sim):
    """20 jobs with a limit of 4: never more than 4 requests open at the simulator."""
    server = make_sim(profile="ideal", time_scale=SCALE)
    jobs = [nbp.submit(f"p{i}", provider="gemini", base_url=server.url, api_key="k",
                       time_scale=SCALE, max_concurrency=4) for i in range(20)]
    results = [j.result(timeout=60) for j in jobs]
    assert all(r.success for r in results) and len(server.log) == 20
    assert server.max_in_flight == 4


def test_fallback_to_another_model(home, make_sim):
    """A ladder rung may name another model: the retry goes out with it, and is priced by it."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="hang, hang, hang, ok")
    result = run(server, size="4K", timeout=30, fallback="gemini-2.5-flash-image@1K")
    assert [(a.resolution, a.model) for a in result.attempts] == [
        ("4K", "gemini-3-pro-image-preview")] * 3 + [("1K", "gemini-2.5-flash-image")]
    assert server.log[-1]["model"] == "gemini-2.5-flash-image"
    assert result.model == "gemini-2.5-flash-image"
    assert result.cost_usd < 0.05  # flash pricing, not 3 Pro's


def test_status_expectation_switches_to_own_history(home, make_sim):
    """The status line's P50-P95 comes from the published figures until MIN_SAMPLES own
    samples exist."""
    from nbp_jupyter.jobs import session
    from nbp_jupyter.records import MIN_SAMPLES, expected_latency

    server = make_sim(profile="ideal", time_scale=SCALE)
    run(server, size="2K")
    store = next(iter(session()._stores.values()))
    assert expected_latency(store, "gemini-3-pro-image-preview", "2K") == (65.0, 120.0)
    for i in range(MIN_SAMPLES - 2):  # with the first, one short
        run(server, size="2K", prompt=f"sample {i}")
    assert expected_latency(store, "gemini-3-pro-image-preview", "2K") == (65.0, 120.0)
    run(server, size="2K", prompt="the last sample")
    p50, p95 = expected_latency(store, "gemini-3-pro-image-preview", "2K")
    assert (p50, p95) != (65.0, 120.0) and p50 <= p95


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_a_503_at_1k_is_not_blamed_on_4k(home, make_sim, provider):
    """A 503 on a 1K attempt said 'this is common for 4K at peak hours', pointing the user
    at a size they had not asked for."""
    server = make_sim(profile="ideal", time_scale=SCALE, script="503, ok")
    result = run(server, provider, size="1K")
    first = result.attempts[0]
    assert (first.resolution, first.outcome) == ("1K", "overloaded") and result.success
    assert "overloaded" in first.detail and "4K" not in first.detail, first.detail
    assert "larger the size" in first.detail
