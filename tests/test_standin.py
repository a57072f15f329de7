"""The independent stand-in for the image service (benchmarks/standin.py, issue 13)."""

from __future__ import annotations

import base64
import io
import json
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from benchmarks import standin
from nbp_jupyter import sizes

SCALE = 0.0005  # a 4K success (~120 s) is 60 ms; the 600 s limit 0.3 s
# The published figures, written here again so a slip in the stand-in's own copy fails a test
# (docs/facts.md "Latency and success"; the failure mix is issue 13's).
SUCCESS = {"1K": 0.95, "2K": 0.85, "4K": 0.50}
LATENCY_P50_P95 = {"1K": (45, 90), "2K": (65, 120), "4K": (120, 170)}
FAILURE_MIX = {"503": 0.45, "hang": 0.35, "500": 0.10, "429": 0.10}


@pytest.fixture
def stand_in():
    with standin.start(seed=3, time_scale=SCALE) as server:
        yield server


def _prompt(size: str, kind: str, seed: int = 3, start: int = 0) -> str:
    """The first prompt whose first call at `size` is drawn as `kind`."""
    return next(f"prompt {i}" for i in range(start, start + 10_000)
                if standin.fate(seed, size, f"prompt {i}", 0).kind == kind)


def _body(prompt: str, size: str, aspect: str = "1:1") -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                 "imageConfig": {"aspectRatio": aspect, "imageSize": size}}}


def _wait_for(condition, what: str) -> None:
    """Liveness only (not a timing claim): fail rather than hang if `condition` never holds."""
    end = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < end, f"stand-in never reached: {what}"
        time.sleep(0.01)


def test_pixel_table_agrees_with_the_engines_own_transcription():
    """The stand-in's sizes (typed from the docs on their own) match the engine's table."""
    for aspect in sizes.ASPECTS:
        for size in sizes.RESOLUTIONS:
            assert standin.pixels(size, aspect) == sizes.pixels(size, aspect)


@pytest.mark.parametrize("aspect", ["1:1", "21:9"])
def test_google_genai_sdk_gets_a_1k_image_of_the_documented_size(stand_in, aspect):
    """A google-genai user pointed at the stand-in gets a real PNG of the right size and usage."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="any", http_options=types.HttpOptions(base_url=stand_in.base_url))
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview", contents=_prompt("1K", "ok"),
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect, image_size="1K")))
    images = [p.inline_data.data for p in response.candidates[0].content.parts if p.inline_data]
    assert len(images) == 1
    assert Image.open(io.BytesIO(images[0])).size == sizes.pixels("1K", aspect)
    details = {d.modality.value: d.token_count
               for d in response.usage_metadata.candidates_tokens_details}
    assert details == {"IMAGE": 1120}
    assert stand_in.stats.calls[("ok", "1K")] == 1


def test_a_4k_answer_has_4k_pixels_and_2000_image_tokens(stand_in):
    """A 4K answer is told apart from a 2K one by its pixels and its usage, as the real one is."""
    body = _body(_prompt("4K", "ok"), "4K", "16:9")
    answer = httpx.post(f"{stand_in.base_url}/v1beta/models/m:generateContent",
                        headers={"x-goog-api-key": "k"}, json=body)
    data = answer.json()
    part = data["candidates"][0]["content"]["parts"][0]["inlineData"]
    assert part["mimeType"] == "image/png"
    image = Image.open(io.BytesIO(base64.b64decode(part["data"])))
    assert image.size == sizes.pixels("4K", "16:9")
    assert data["usageMetadata"]["candidatesTokensDetails"] == [
        {"modality": "IMAGE", "tokenCount": 2000}]


def test_sdk_sees_a_429_with_its_retry_delay_and_a_missing_key(stand_in):
    """A 429 carries RetryInfo in the body as Google's does; a call without a key is refused."""
    from google import genai
    from google.genai import errors, types

    client = genai.Client(api_key="any", http_options=types.HttpOptions(base_url=stand_in.base_url))
    prompt = _prompt("2K", "429")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(
            model="gemini-3-pro-image-preview", contents=prompt,
            config=types.GenerateContentConfig(image_config=types.ImageConfig(image_size="2K")))
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    retry = [d for d in info.value.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                      "retryDelay": f"{standin.fate(3, '2K', prompt, 0).retry_delay_s}s"}]
    answer = httpx.post(f"{stand_in.base_url}/v1beta/models/m:generateContent",
                        json=_body("x", "1K"))
    assert answer.status_code == 403 and answer.json()["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("size", ["1K", "2K", "4K"])
def test_draws_match_the_published_figures(size):
    """Over many calls, success rate, failure mix and latency quantiles are the published ones."""
    draws = [standin.fate(7, size, f"p{i}", i % 3) for i in range(20_000)]
    ok = [d.service_s for d in draws if d.kind == "ok"]
    assert len(ok) / len(draws) == pytest.approx(SUCCESS[size], abs=0.015)
    failed = [d for d in draws if d.kind != "ok"]
    for kind, share in FAILURE_MIX.items():  # 1K has ~1000 failures: sd of a share <= 1.6 pt
        assert sum(d.kind == kind for d in failed) / len(failed) == pytest.approx(share, abs=0.045)
    p50, p95 = LATENCY_P50_P95[size]
    cuts = statistics.quantiles(ok, n=100)
    assert cuts[49] == pytest.approx(p50, rel=0.03)
    assert cuts[94] == pytest.approx(p95, rel=0.05)
    fast = [d.service_s for d in failed if d.kind != "hang"]
    assert min(fast) >= 1 and max(fast) <= 5
    assert {d.retry_delay_s for d in failed if d.kind == "429"} <= set(range(5, 61))


def test_served_outcomes_follow_the_draws_and_the_servers_deadline(stand_in):
    """What the client receives is exactly the drawn fate: a hang or a slow call ends in 504."""
    prompts = [f"job {i}" for i in range(12)] * 2  # each asked twice: the second draw is nth 1
    deadline = 130.0  # cuts a few slow 4K successes and every hang

    def call(prompt: str) -> int:
        return httpx.post(f"{stand_in.base_url}/v1beta/models/m:generateContent",
                          headers={"x-goog-api-key": "k", "x-server-timeout": str(deadline)},
                          json=_body(prompt, "4K"), timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        seen = sorted(pool.map(call, prompts))
    expected = []
    for prompt in sorted(set(prompts)):
        for nth in (0, 1):
            drawn = standin.fate(3, "4K", prompt, nth)
            slow = drawn.kind == "hang" or drawn.service_s > deadline
            expected.append(504 if slow else 200 if drawn.kind == "ok" else int(drawn.kind))
    assert seen == sorted(expected)
    assert 504 in seen and 200 in seen  # the seed exercises both paths
    log = stand_in.stats.log
    assert sorted((row["prompt"], row["nth"]) for row in log) == sorted(
        (p, n) for p in set(prompts) for n in (0, 1))
    assert sum(stand_in.stats.calls.values()) == len(prompts)


def test_a_hang_holds_the_line_until_the_client_cuts_and_counts_calls_in_flight(stand_in):
    """A hang sends nothing until the client hangs up; the stand-in counts 4 calls at once."""
    prompts = [_prompt("4K", "hang", start=100 * i) for i in range(4)]
    sockets = []
    for prompt in prompts:
        body = json.dumps(_body(prompt, "4K")).encode()
        sock = socket.create_connection(("127.0.0.1", int(stand_in.base_url.rsplit(":", 1)[1])))
        sock.sendall(b"POST /v1beta/models/m:generateContent HTTP/1.1\r\nHost: x\r\n"
                     b"x-goog-api-key: k\r\ncontent-type: application/json\r\n"
                     b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        sockets.append(sock)
    _wait_for(lambda: stand_in.stats.in_flight == 4, "four calls in flight")
    for sock in sockets:
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing crosses the wire during a hang
            sock.recv(1)
        sock.close()
    _wait_for(lambda: stand_in.stats.calls[("cut", "4K")] == 4, "four cut calls counted")
    assert stand_in.stats.max_in_flight == 4 and stand_in.stats.in_flight == 0
    served = httpx.get(f"{stand_in.base_url}/standin/stats").json()
    assert {"outcome": "cut", "size": "4K", "n": 4} in served["calls"]


def test_the_same_seed_meets_the_same_fates_and_another_seed_does_not():
    """Two benchmark runs with one seed see the same service; a new seed a different one."""
    def fates(seed: int) -> list:
        return [standin.fate(seed, "4K", f"job {i}", n) for i in range(50) for n in range(3)]

    assert fates(5) == fates(5)
    assert fates(5) != fates(6)


def test_runs_as_a_script_and_serves_its_counts(tmp_path):
    """`python benchmarks/standin.py --port 0` starts from any folder and reports what it did."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(standin.__file__)
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0", "--seed", "3",
                             "--time-scale", str(SCALE)], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path)
    try:
        line = proc.stdout.readline().split()
        assert line[:2] == ["listening", "on"]
        url = line[2]
        prompt = _prompt("1K", "ok")
        answer = httpx.post(f"{url}/v1beta/models/m:generateContent",
                            headers={"x-goog-api-key": "k"}, json=_body(prompt, "1K"))
        assert answer.status_code == 200
        counts = httpx.get(f"{url}/standin/stats").json()
        assert counts["calls"] == [{"outcome": "ok", "size": "1K", "n": 1}]
        assert counts["log"][0]["prompt"] == prompt and counts["log"][0]["fate"] == "ok"
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


def test_the_seeds_ladder_replay_waits_out_each_hang_before_the_next_try():
    """The README's check of the stand-in adds up a job's time as the seeds' client lives it."""
    from benchmarks import standin_ladder

    def kinds(prompt: str) -> list[str]:
        return [standin.fate(3, "4K", prompt, nth).kind for nth in range(3)]

    prompt = next(f"p{i}" for i in range(10_000) if kinds(f"p{i}") == ["hang", "hang", "ok"])
    size, elapsed = standin_ladder.job(3, prompt)
    third = standin.fate(3, "4K", prompt, 2).service_s
    assert size == "4K"  # two hangs cut at the service's 600 s, the waits 60 s and 120 s
    assert elapsed == pytest.approx(600 + 60 + 600 + 120 + third)


def test_our_engine_gets_its_image_from_the_stand_in_as_from_the_service(home):
    """nbp.generate pointed at the stand-in delivers, and both sides agree on every call made."""
    import nbp_jupyter as nbp

    with standin.start(seed=3, time_scale=0.001) as server:
        result = nbp.generate("job 1", size="4K", aspect="16:9", provider="gemini",
                              base_url=server.base_url, api_key="k", time_scale=0.001)
        log = list(server.stats.log)
    assert result.success and not result.simulated  # the stand-in plays the real service
    with Image.open(result.image_path) as image:
        assert image.size == sizes.pixels(result.resolution, "16:9")
    # Under load the engine's scaled connect/write/pool timeouts (tens of ms here) can fail an
    # attempt ("connection") before it reaches the stand-in: it may see fewer calls, never more.
    assert 0 < len(log) <= len(result.attempts)
    assert log[-1]["outcome"] == "ok" and log[-1]["size"] == result.resolution
    assert log[0]["fate"] != "ok"  # seed 3 makes this job meet a failure first
