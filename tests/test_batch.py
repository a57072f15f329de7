"""Batches through the Python API against the simulator: create once, poll, collect into the
ledger at half price, and every way a batch can end."""

from __future__ import annotations

import pytest

from nbp_jupyter import batching as nbp_batch
from nbp_jupyter import batch_wire, pricing
from nbp_jupyter.batch_store import BatchLedger
from nbp_jupyter.errors import ConfigError
from nbp_jupyter.jobs import session

SCALE = 0.0001


@pytest.fixture
def bsim(make_sim):
    """A fast simulator whose batch lines fail only where a test says so."""
    server = make_sim(profile="ideal", time_scale=SCALE)
    server.app.batches.line_failure = 0.0
    return server


def _batch(server, home, prompts, **kw):
    kw.setdefault("size", "1K")
    return nbp_batch.batch(prompts, provider="gemini", base_url=server.url, api_key="k",
                           time_scale=SCALE, home=home, **kw)


def _ledger_jobs(home, batch_id):
    with BatchLedger(home) as ledger:
        return [line.job_id for line in ledger.lines(batch_id) if line.job_id]


def test_inline_batch_collects_every_line_at_half_price(bsim, home):
    """Three prompts come back as three images, each billed half the interactive price."""
    job = _batch(bsim, home, ["a red fox", "a blue jay", "a green frog"], aspect="3:2")
    assert job.wait(30), job
    assert job.state == "done" and job.counts == (3, 0, 3) and job.progress == 1.0
    results = job.results()
    assert [r.prompt for r in results] == ["a red fox", "a blue jay", "a green frog"]
    full = pricing.cost("gemini-3-pro-image-preview", "1K", 1120)
    for r in results:
        assert r.success and r.image_path.is_file() and (r.width, r.height) == (1264, 848)
        assert r.cost_usd == pytest.approx(full / 2, abs=1e-3) and r.cost_usd < full * 0.6
        assert r.attempts[0].billed == "yes" and "batch batches/" in r.attempts[0].detail
    assert job.cost_usd == pytest.approx(sum(r.cost_usd for r in results))
    # the history sees them as jobs like any other
    history = {r["id"]: r for r in __import__("nbp_jupyter").history()}
    assert all(r.job_id in history and history[r.job_id]["status"] == "done" for r in results)
    assert len(bsim.app.batches.batches) == 1


def test_large_batch_goes_through_an_uploaded_file(bsim, home):
    """When the inline answer would be too big, the JSONL route is taken and still collected."""
    job = _batch(bsim, home, [{"prompt": f"shot {i}", "size": "2K"} for i in range(4)],
                 max_response_mb=16)
    assert job.wait(30), job
    assert job.state == "done" and job.counts == (4, 0, 4)
    paths = [m["path"] for m in bsim.app.batches.log]
    assert any(p.startswith("/upload/v1beta/files") for p in paths)
    assert any(p.startswith("/download/v1beta/files/") for p in paths)
    assert all(r.resolution == "2K" for r in job.results())


def test_uncertain_create_does_not_make_a_second_batch(bsim, home):
    """A create whose answer is lost is found by its name, not sent again (no double bill)."""
    bsim.app.batches.script("create", "disconnect")
    job = _batch(bsim, home, ["one", "two"])
    assert job.wait(30), job
    assert job.state == "done" and job.counts == (2, 0, 2)
    assert len(bsim.app.batches.batches) == 1
    creates = [m for m in bsim.app.batches.log if m["path"].endswith(":batchGenerateContent")]
    assert len(creates) == 1


def test_refused_create_is_sent_again(bsim, home):
    """A 503 on create means nothing was made: the batch is created on a later try."""
    bsim.app.batches.script("create", "503, 503")
    job = _batch(bsim, home, ["one"])
    assert job.wait(30) and job.state == "done"
    assert len(bsim.app.batches.batches) == 1


def test_expired_batch_ends_clearly_and_bills_nothing(bsim, home):
    """An expired batch says so and why, and no line is billed or recorded as an image."""
    bsim.app.batches.script("create", "expire")
    job = _batch(bsim, home, ["one", "two", "three"])
    assert job.wait(30), job
    assert job.state == "expired" and "48 hours" in job.error and "nothing is billed" in job.error
    assert job.counts == (0, 0, 3) and job.cost_usd == 0
    assert job.results() == [] and job.missing() == ["one", "two", "three"]
    assert _ledger_jobs(home, job.id) == []
    totals = __import__("nbp_jupyter").history().totals()
    assert totals["cost_usd"] == 0 and totals["jobs"] == 0


def test_failed_batch_ends_with_the_services_reason(bsim, home):
    """A batch the service fails says why, and nothing is billed or recorded as an image."""
    bsim.app.batches.script("create", "fail")
    job = _batch(bsim, home, ["one", "two"])
    assert job.wait(30), job
    assert job.state == "failed" and "Batch processing failed" in job.error
    assert "not billed" in job.error and job.cost_usd == 0 and job.results() == []


def test_polls_through_503s_and_a_cut_download(bsim, home):
    """503s on get and a download cut midway still end with every image exactly once."""
    bsim.app.batches.script("get", "503, 503, disconnect")
    bsim.app.batches.script("download", "cut:0.5")
    job = _batch(bsim, home, [f"p{i}" for i in range(6)], size="2K", max_response_mb=16)
    assert job.wait(30), job
    assert job.state == "done" and job.counts == (6, 0, 6)
    downloads = [m for m in bsim.app.batches.log if m["path"].startswith("/download/")]
    assert len(downloads) == 2  # cut once, resumed once from the last whole line
    assert downloads[0]["range"] is None and downloads[1]["range"].startswith("bytes=")
    assert int(downloads[1]["range"][6:].rstrip("-")) > 0
    files = sorted((home / "images" / "batches" / job.id).glob("*.png"))
    assert len(files) == 6 and len(set(_ledger_jobs(home, job.id))) == 6


def test_a_busy_download_is_asked_again(bsim, home):
    """A 503 on the results download is retried, not taken for the end of the batch."""
    bsim.app.batches.script("download", "503")
    job = _batch(bsim, home, ["a", "b"], size="2K", max_response_mb=16)
    assert job.wait(30), job
    assert job.state == "done" and job.counts == (2, 0, 2)
    assert len([m for m in bsim.app.batches.log if m["path"].startswith("/download/")]) == 2


def test_failed_lines_keep_their_error(bsim, home):
    """A line the service failed is a failed job with its reason, not an image."""
    bsim.app.batches.fail_lines = {1}
    job = _batch(bsim, home, ["fine", "fails", "fine too"])
    assert job.wait(30), job
    assert job.state == "done" and job.counts == (2, 1, 3)
    failed = [r for r in job.results() if not r.success]
    assert len(failed) == 1 and failed[0].prompt == "fails" and failed[0].error
    assert failed[0].image_path is None


def test_cancel_ends_the_batch(bsim, home):
    """cancel() asks the service, and the batch ends as cancelled with nothing billed."""
    bsim.app.batches.pending_s = 1e9
    job = _batch(bsim, home, ["slow"])
    for _ in range(200):
        if job.name:
            break
        job.wait(0.02)
    assert job.cancel()
    assert job.wait(30) and job.state == "cancelled" and job.cost_usd == 0


@pytest.mark.parametrize("prompts,words", [
    ("one prompt", "not one string"), ([], "no prompts"),
    ([{"prompt": "x", "size": "3K"}], "row 0"), (["ok", ""], "row 1"),
    ([{"prompt": "x", "colour": "red"}], "unknown field")])
def test_bad_input_is_one_clear_line(home, prompts, words):
    """Mistakes are refused before anything is sent, naming the row."""
    with pytest.raises(ConfigError, match=words):
        nbp_batch.batch(prompts, provider="sim", home=home)


def test_gateway_provider_is_refused(home, monkeypatch):
    """The Batch API is Gemini's: an OpenAI-compatible provider gets a clear refusal."""
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    with pytest.raises(ConfigError, match="Batch API is Gemini's"):
        nbp_batch.batch(["x"], provider="openai", home=home)


def test_pandas_column_with_the_keyless_simulator(home, monkeypatch):
    """batch(df['prompt']) runs on the built-in simulator with no key at all."""
    import pandas as pd

    monkeypatch.setenv("NBP_TIME_SCALE", str(SCALE))
    job = nbp_batch.batch(pd.DataFrame({"prompt": ["a", "b"]})["prompt"], provider="sim",
                          home=home)
    sim_app = session().simulators.servers()[0].app
    sim_app.batches.line_failure = 0.0
    assert job.wait(30), job
    assert job.state == "done" and job.done_count + job.failed_count == 2
    assert all(r.simulated for r in job.results())


def test_a_whole_dataframe_sends_its_rows(bsim, home):
    """batch(df) sends one line per row with its own options, not the column names."""
    import pandas as pd

    frame = pd.DataFrame({"prompt": ["a fox", "a jay"], "aspect": ["16:9", "9:16"]})
    job = _batch(bsim, home, frame)
    assert job.wait(30) and job.state == "done"
    assert [(r.prompt, r.width, r.height) for r in job.results()] == [
        ("a fox", 1376, 768), ("a jay", 768, 1376)]
    with pytest.raises(ConfigError, match="unknown field"):
        _batch(bsim, home, frame.assign(colour="red"))


def test_parse_line_reads_both_result_forms():
    """A responses-file line and an inlined response give the same key and image."""
    response = {"candidates": [{"content": {"parts": [{"inlineData": {
        "mimeType": "image/png", "data": "iVBORw0KGgo="}}]}}],
        "usageMetadata": {"candidatesTokenCount": 1120}}
    from_file = batch_wire.parse_line(b'{"key": "7", "response": %s}' %
                                      __import__("json").dumps(response).encode())
    inline = batch_wire.parse_line({"response": response, "metadata": {"key": "7"}})
    assert from_file == inline and from_file.key == "7" and from_file.output_tokens == 1120
    error = batch_wire.parse_line({"error": {"code": 13, "message": "Internal"}, "key": "8"})
    assert error.key == "8" and error.image is None and "Internal" in error.error


def test_a_batch_for_a_mistyped_model_fails_once_naming_it(bsim, home):
    """A wrong model name is one line naming it, after one create: nothing is sent again."""
    job = _batch(bsim, home, ["one"], model="gemini-3-pro-imag")
    assert job.wait(30), job
    assert job.state == "failed" and "\n" not in job.error
    assert "HTTP 404" in job.error and "models/gemini-3-pro-imag is not found" in job.error
    creates = [m for m in bsim.app.batches.log if m["path"].endswith(":batchGenerateContent")]
    assert len(creates) == 1 and bsim.app.batches.batches == {}
