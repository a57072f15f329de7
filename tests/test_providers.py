"""Response parsing from bytes alone: every odd answer becomes a typed error or an image."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from nbp_jupyter.errors import AuthError, BadResponse, Blocked, Overloaded, RateLimited, ServerError
from nbp_jupyter.providers import gemini, openai
from nbp_jupyter.types import ReferenceImage, Request

PNG = base64.b64encode(b"\x89PNG fake").decode()
H = httpx.Headers({"content-type": "application/json"})


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def test_gemini_request_matches_the_documented_shape():
    """The request body is the documented one (docs/facts.md), the key in x-goog-api-key, not in the URL."""
    req = Request(prompt="a {braced} $prompt", size="4K", aspect="16:9",
                  images=(ReferenceImage(b"img", "image/png", "r.png"),))
    http = gemini.build(req, "4K", "gemini-3-pro-image-preview", "https://h", "KEY")
    sent = json.loads(http.content)
    assert str(http.url) == "https://h/v1beta/models/gemini-3-pro-image-preview:generateContent"
    assert http.headers["x-goog-api-key"] == "KEY" and "KEY" not in str(http.url)
    assert sent["contents"][0]["parts"][0] == {"text": "a {braced} $prompt"}
    assert sent["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "image/png"
    assert sent["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "4K"}


def test_openai_request_uses_pixel_sizes():
    http = openai.build(Request(prompt="p", aspect="9:16"), "2K", "nano-banana-pro", "https://g", "K")
    assert json.loads(http.content)["size"] == "1536x2752"
    assert http.headers["authorization"] == "Bearer K"


def test_gemini_skips_thoughts_and_reads_tokens():
    parts = [{"inlineData": {"mimeType": "image/png", "data": PNG}, "thought": True},
             {"text": "here"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]
    parsed = gemini.parse(200, H, body({"candidates": [{"content": {"parts": parts}}],
                                        "usageMetadata": {"candidatesTokenCount": 2000}}))
    assert parsed.skipped_thoughts == 1 and parsed.output_tokens == 2000
    assert parsed.data == b"\x89PNG fake"


@pytest.mark.parametrize("status,payload,error", [
    (503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}}, Overloaded),
    (429, {"error": {"code": 429, "message": "quota", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "47s"}]}}, RateLimited),
    (400, {"error": {"code": 400, "message": "API key not valid", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}, AuthError),
    (403, {"error": {"code": 403, "message": "denied"}}, AuthError),
    (502, "<html>bad gateway</html>", ServerError),
])
def test_gemini_errors(status, payload, error):
    raw = payload.encode() if isinstance(payload, str) else body(payload)
    with pytest.raises(error) as info:
        gemini.parse(status, H, raw)
    if error is RateLimited:
        assert info.value.retry_after_s == 47.0


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", body({"candidates": []}),
                                 body({"candidates": [{"content": {"parts": [
                                     {"inlineData": {"data": "!!notbase64!!"}}]}}]}),
                                 body({"candidates": ["x"]})])
def test_gemini_odd_200_bodies_are_bad_responses(raw):
    with pytest.raises(BadResponse):
        gemini.parse(200, H, raw)


def test_gemini_prompt_block_is_blocked():
    with pytest.raises(Blocked):
        gemini.parse(200, H, body({"promptFeedback": {"blockReason": "SAFETY"}}))


def test_openai_retry_after_ms_wins_over_seconds():
    headers = httpx.Headers({"retry-after": "3", "retry-after-ms": "2500"})
    with pytest.raises(RateLimited) as info:
        openai.parse(429, headers, body({"error": {"message": "slow down"}}))
    assert info.value.retry_after_s == 2.5


def test_openai_url_answers_are_followed_later():
    parsed = openai.parse(200, H, body({"data": [{"url": "https://cdn/x.png"}]}))
    assert parsed.url == "https://cdn/x.png" and parsed.data == b""
