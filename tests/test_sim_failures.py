"""Each simulated failure looks on the wire like the real thing, seen by a plain httpx client."""

from __future__ import annotations

import base64
import io
import json
import time

import httpx
import pytest
from PIL import Image

GEMINI = "/v1beta/models/gemini-3-pro-image-preview:generateContent"
KEY = {"x-goog-api-key": "test-key"}


def gemini_body(size="1K", aspect="1:1", prompt="a red fox"):
    return {"contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                 "imageConfig": {"aspectRatio": aspect, "imageSize": size}}}


def post_gemini(server, size="1K", timeout=5.0, **kw):
    return httpx.post(server.url + GEMINI, json=gemini_body(size, **kw), headers=KEY,
                      timeout=timeout)


def post_openai(server, size="1024x1024", model="gemini-3-pro-image-preview"):
    return httpx.post(server.url + "/v1/images/generations",
                      json={"model": model, "prompt": "a red fox", "size": size, "n": 1,
                            "response_format": "b64_json"},
                      headers={"Authorization": "Bearer test-key"}, timeout=5.0)


def images_in(response):
    parts = response.json()["candidates"][0]["content"]["parts"]
    return [(p.get("thought", False), Image.open(io.BytesIO(base64.b64decode(
        p["inlineData"]["data"])))) for p in parts if "inlineData" in p]


@pytest.mark.parametrize("item,status,gstatus", [
    ("503", 503, "UNAVAILABLE"), ("500", 500, "INTERNAL"), ("504", 504, "DEADLINE_EXCEEDED")])
def test_gemini_http_errors_have_the_google_shape(make_sim, item, status, gstatus):
    """503/500/504 carry Google's error envelope so clients can classify them."""
    server = make_sim(profile="ideal", script=item)
    response = post_gemini(server)
    assert response.status_code == status
    assert response.json()["error"]["status"] == gstatus
    assert response.json()["error"]["code"] == status
    assert response.headers["x-nbp-simulated"] == "true"


def test_gemini_429_puts_the_delay_in_retry_info(make_sim):
    """Gemini's 429 says how long to wait in the body, not in a header."""
    server = make_sim(profile="ideal", script="429:47s")
    response = post_gemini(server)
    assert response.status_code == 429
    details = response.json()["error"]["details"]
    assert details[0]["@type"].endswith("google.rpc.RetryInfo")
    assert details[0]["retryDelay"] == "47s"
    assert "retry-after" not in response.headers


def test_openai_429_has_retry_after_headers(make_sim):
    """OpenAI-compatible gateways send Retry-After and retry-after-ms."""
    server = make_sim(profile="ideal", script="429:2.5s")
    response = post_openai(server)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.headers["retry-after-ms"] == "2500"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_hang_never_answers_until_the_client_gives_up(make_sim):
    """A hang holds the request open with no bytes; only the client's timeout ends it."""
    server = make_sim(profile="ideal", script="hang")
    start = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        post_gemini(server, timeout=httpx.Timeout(5.0, read=0.5))
    assert time.monotonic() - start >= 0.5
    assert server.log[-1]["outcome"] == "hang"


def test_disconnect_cuts_the_body_midway(make_sim):
    """A connection killed mid-body surfaces as a protocol error, not a short image."""
    server = make_sim(profile="ideal", script="disconnect")
    with pytest.raises(httpx.RemoteProtocolError):
        post_gemini(server)


def test_truncated_json_is_a_complete_http_message(make_sim):
    """Truncated JSON arrives as a well-formed 200 whose body does not parse."""
    server = make_sim(profile="ideal", script="truncated")
    response = post_gemini(server)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


@pytest.mark.parametrize("item,status", [("html200", 200), ("html502", 502)])
def test_proxy_html_pages(make_sim, item, status):
    """A proxy answers with an HTML page instead of JSON."""
    server = make_sim(profile="ideal", script=f"{item}:0")
    response = post_gemini(server)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert b"<html>" in response.content


@pytest.mark.parametrize("item,reason", [("safety", "IMAGE_SAFETY"), ("no_image", "NO_IMAGE")])
def test_200_without_an_image(make_sim, item, reason):
    """A 200 can hold no image; finishReason says why."""
    server = make_sim(profile="ideal", script=item)
    body = post_gemini(server).json()
    candidate = body["candidates"][0]
    assert candidate["finishReason"] == reason
    assert not any("inlineData" in p for p in candidate.get("content", {}).get("parts", []))


def test_prompt_block_has_prompt_feedback(make_sim):
    """A blocked prompt has promptFeedback.blockReason and no candidates."""
    server = make_sim(profile="ideal", script="blocked")
    body = post_gemini(server).json()
    assert body["promptFeedback"]["blockReason"] == "PROHIBITED_CONTENT"
    assert "candidates" not in body


def test_silent_downgrade_delivers_2k_pixels_and_tokens(make_sim):
    """4K asked, 2K delivered: both the pixels and the token count give it away."""
    server = make_sim(profile="ideal", script="downgrade")
    response = post_gemini(server, size="4K")
    [(_, image)] = images_in(response)
    assert image.size == (2048, 2048)
    details = response.json()["usageMetadata"]["candidatesTokensDetails"]
    assert {d["modality"]: d["tokenCount"] for d in details}["IMAGE"] == 1120


def test_thought_draft_comes_before_the_real_image(make_sim):
    """A `thought: true` draft precedes the real image, as Gemini 3 does."""
    server = make_sim(profile="ideal", script="thought")
    found = images_in(post_gemini(server, size="2K"))
    assert [thought for thought, _ in found] == [True, False]
    assert found[1][1].size == (2048, 2048)


def test_slow_drip_dodges_a_per_read_timeout(make_sim):
    """A byte every few seconds keeps a read timeout from ever firing; the call runs long."""
    server = make_sim(profile="ideal", script="drip", time_scale=0.001)
    start = time.monotonic()
    response = post_gemini(server, timeout=httpx.Timeout(10.0, read=0.3))
    elapsed = time.monotonic() - start
    assert response.status_code == 200
    assert elapsed > 1.0  # 1800 simulated seconds of drip at time_scale 0.001
    assert images_in(response)


def test_script_replays_in_order_then_falls_back_to_the_profile(make_sim):
    """Scripted outcomes are consumed one per request, in order."""
    server = make_sim(profile="ideal", script="503, 429:1s, 500, ok, 504")
    statuses = [post_gemini(server).status_code for _ in range(6)]
    assert statuses == [503, 429, 500, 200, 504, 200]
    assert [e["outcome"] for e in server.log] == [
        "overloaded", "rate_limited:1s", "server_error", "ok", "deadline", "ok"]


def test_outage_profile_is_all_503(make_sim):
    """The outage profile refuses everything with 503."""
    server = make_sim(profile="outage")
    assert {post_gemini(server, prompt=f"p{i}").status_code for i in range(5)} == {503}


def test_missing_and_wrong_keys(make_sim):
    """No key: 403 PERMISSION_DENIED (Gemini) / 401 (OpenAI); wrong key: API_KEY_INVALID."""
    server = make_sim(profile="ideal", api_key="right")
    no_key = httpx.post(server.url + GEMINI, json=gemini_body())
    assert no_key.status_code == 403 and no_key.json()["error"]["status"] == "PERMISSION_DENIED"
    wrong = httpx.post(server.url + GEMINI + "?key=wrong", json=gemini_body())
    assert wrong.status_code == 400
    assert wrong.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    right = httpx.post(server.url + GEMINI + "?key=right", json=gemini_body(), timeout=5)
    assert right.status_code == 200
    assert httpx.post(server.url + "/v1/images/generations", json={"prompt": "x"}).status_code == 401


def test_bad_requests_get_invalid_argument(make_sim):
    """Unknown sizes are refused the way the services refuse them."""
    server = make_sim(profile="ideal")
    assert post_gemini(server, size="8K").status_code == 400
    response = post_openai(server, size="1000x1000")
    assert response.status_code == 400 and response.json()["error"]["param"] == "size"


def test_same_seed_same_outcomes(make_sim):
    """Profiles are deterministic per seed, so benchmarks compare policies on equal terms."""
    def outcomes(seed):
        server = make_sim(profile="typical", seed=seed, time_scale=0.00001)
        for i in range(40):
            try:
                post_gemini(server, size="4K", prompt=f"prompt {i}",
                            timeout=httpx.Timeout(5.0, read=0.2))
            except httpx.HTTPError:
                pass
        return [e["outcome"] for e in server.log]

    first = outcomes(7)
    assert first == outcomes(7)
    assert first != outcomes(8)
    assert "ok" in first and any(o != "ok" for o in first)


def test_unknown_gemini_model_is_a_404_in_googles_shape(make_sim):
    """A mistyped model gets the real service's 404 NOT_FOUND, not a simulated image."""
    server = make_sim(profile="ideal")
    response = httpx.post(server.url + "/v1beta/models/gemini-9-ultra-image:generateContent",
                          json=gemini_body(), headers=KEY, timeout=5.0)
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (404, "NOT_FOUND")
    assert error["message"].startswith("models/gemini-9-ultra-image is not found for API "
                                       "version v1beta, or is not supported for generateContent")
    assert post_gemini(server).status_code == 200  # the served model still answers
