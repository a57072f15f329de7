"""The wires as gateways speak them, from bytes alone: what LiteLLM, OpenRouter and the
real Gemini API send back, and what we make of it (see docs/gateway-matrix.md)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from nbp_jupyter import pricing
from nbp_jupyter.errors import BadResponse, Blocked, Overloaded, RateLimited
from nbp_jupyter.providers import chat, gemini, openai
from nbp_jupyter.types import ReferenceImage, Request

FINAL, DRAFT = b"\x89PNG final", b"\x89PNG draft"
H = httpx.Headers({"content-type": "application/json"})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def test_images_request_sends_only_model_prompt_and_size():
    """A LiteLLM gateway in front of Gemini refuses response_format and n: we send neither."""
    http = openai.build(Request(prompt="p", aspect="16:9"), "4K", "nano-banana-pro", "https://g", "K")
    assert json.loads(http.content) == {"model": "nano-banana-pro", "prompt": "p",
                                        "size": "5504x3072"}


@pytest.mark.parametrize("item,data,url", [
    ({"b64_json": b64(FINAL)}, FINAL, None),
    ({"url": f"data:image/png;base64,{b64(FINAL)}"}, FINAL, None),
    ({"url": "https://cdn.example/i.png"}, b"", "https://cdn.example/i.png"),
])
def test_images_answer_may_be_base64_a_data_url_or_a_link(item, data, url):
    """Whichever form the gateway picks, the image (or the link to fetch) is found."""
    parsed = openai.parse(200, H, body({"data": [item]}))
    assert (parsed.data, parsed.url) == (data, url)


def test_images_answer_keeps_the_final_image_not_the_draft():
    """LiteLLM returns Gemini's thinking draft as an extra data[] item first: we keep the last."""
    parsed = openai.parse(200, H, body({"data": [{"b64_json": b64(DRAFT)},
                                                 {"b64_json": b64(FINAL)}]}))
    assert parsed.data == FINAL and parsed.skipped_thoughts == 1


@pytest.mark.parametrize("usage,billed", [({"output_tokens": 0, "input_tokens": 5}, "no"),
                                          (None, "unknown")])
def test_empty_data_with_zero_output_tokens_was_not_billed(usage, billed):
    """`data: []` with zero output tokens is a no-image answer nobody paid for."""
    payload = {"data": []} | ({"usage": usage} if usage else {})
    with pytest.raises(BadResponse) as info:
        openai.parse(200, H, body(payload))
    assert info.value.billed == billed and info.value.retriable


LITELLM_429 = ('litellm.RateLimitError: litellm.RateLimitError: GeminiException - {"error": '
               '{"code": 429, "message": "Resource has been exhausted (e.g. check quota).", '
               '"status": "RESOURCE_EXHAUSTED", "details": [{"@type": '
               '"type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "20s"}]}}')


@pytest.mark.parametrize("message,delay", [(LITELLM_429, 20.0),
                                           ("Rate limit reached. Please try again in 7.5s.", 7.5),
                                           ("quota exceeded, retry in 3s", 3.0),
                                           ("quota exceeded", None)])
def test_retry_delay_left_in_the_message_is_honoured(message, delay):
    """A gateway that drops Retry-After but keeps the delay in its words: we wait that long."""
    with pytest.raises(RateLimited) as info:
        openai.parse(429, H, body({"error": {"message": message, "type": "throttling_error",
                                             "code": "429"}}))
    assert info.value.retry_after_s == delay


LITELLM_500 = ('litellm.InternalServerError: litellm.InternalServerError: geminiException - '
               '{"error": {"code": 503, "message": "The model is overloaded. Please try again '
               'later.", "status": "UNAVAILABLE"}}\n\nLiteLLM: model group \'nano-banana-pro\' '
               'failed with the error above. No fallback was attempted.')


@pytest.mark.parametrize("wire", [openai, chat, gemini])
def test_gateway_5xx_after_its_own_retries_is_retried_and_says_so(wire):
    """LiteLLM's 500 around Gemini's 503, after 2 retries of its own: still retried by us, as
    overloaded, and the status line says the gateway already retried."""
    headers = httpx.Headers({"content-type": "application/json",
                             "x-litellm-attempted-retries": "2"})
    payload = body({"error": {"message": LITELLM_500, "type": "internal_server_error",
                              "code": "500"}})
    with pytest.raises(Overloaded) as info:
        wire.parse(500, headers, payload)
    assert info.value.retriable and info.value.http_status == 500
    assert "gateway already retried 2 times" in info.value.one_line()


def test_gemini_request_carries_the_server_timeout():
    """X-Server-Timeout in whole seconds (rounded up), as the official SDKs send it."""
    http = gemini.build(Request(prompt="p"), "4K", "m", "https://h", "K", timeout_s=599.2)
    assert http.headers["x-server-timeout"] == "600"
    assert "x-server-timeout" not in gemini.build(Request(prompt="p"), "1K", "m", "https://h",
                                                  "K").headers


USAGE = {"promptTokenCount": 1130, "candidatesTokenCount": 2040, "thoughtsTokenCount": 500,
         "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10},
                                 {"modality": "IMAGE", "tokenCount": 1120}],
         "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 40},
                                     {"modality": "IMAGE", "tokenCount": 2000}]}


def test_gemini_answer_is_priced_per_modality():
    """Image output at $120/M, text and thinking at $12/M, prompt text and images at $2/M."""
    answer = {"candidates": [{"content": {"parts": [
        {"inlineData": {"mimeType": "image/png", "data": b64(FINAL)}}]}}], "usageMetadata": USAGE}
    parsed = gemini.parse(200, H, body(answer))
    assert parsed.tokens == pricing.Tokens(input_text=10, input_image=1120, output_image=2000,
                                           output_text=40, thoughts=500)
    expected = (2000 * 120 + (40 + 500) * 12 + (10 + 1120) * 2) / 1e6
    assert pricing.cost("gemini-3-pro-image-preview", "4K", parsed.tokens) == \
        pytest.approx(expected)
    assert expected > pricing.image_price("gemini-3-pro-image-preview", "4K")  # thinking costs


def test_thinking_without_an_image_is_still_billed():
    """No image but thoughtsTokenCount > 0: billed, at the text rate, not as an image."""
    answer = {"candidates": [{"finishReason": "IMAGE_SAFETY"}],
              "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 0,
                                "thoughtsTokenCount": 400}}
    with pytest.raises(Blocked) as info:
        gemini.parse(200, H, body(answer))
    assert info.value.billed == "yes"
    assert pricing.cost("gemini-3-pro-image-preview", "1K", info.value.tokens, image=False) == \
        pytest.approx((400 * 12 + 10 * 2) / 1e6)


def test_the_gateways_own_cost_wins_over_the_table():
    """LiteLLM's x-litellm-response-cost is what the gateway charged: it is what we record."""
    headers = httpx.Headers({"content-type": "application/json",
                             "x-litellm-response-cost": "0.1412"})
    parsed = openai.parse(200, headers, body({"data": [{"b64_json": b64(FINAL)}]}))
    assert parsed.gateway_cost == pytest.approx(0.1412)
    assert pricing.cost("nano-banana-pro", "2K", parsed.tokens, parsed.gateway_cost) == \
        pytest.approx(0.1412)


def test_chat_request_asks_for_an_image_in_the_documented_shape():
    """modalities and image_config as OpenRouter documents them; references as data URLs."""
    req = Request(prompt="p", aspect="21:9", images=(ReferenceImage(b"img", "image/png", "r"),))
    http = chat.build(req, "2K", "google/gemini-3-pro-image-preview", "https://openrouter.ai/api", "K")
    sent = json.loads(http.content)
    assert str(http.url) == "https://openrouter.ai/api/v1/chat/completions"
    assert sent["modalities"] == ["image", "text"]
    assert sent["image_config"] == {"aspect_ratio": "21:9", "image_size": "2K"}
    assert sent["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_chat_answer_keeps_the_last_image_and_openrouters_cost():
    """Drafts first, the answer last; OpenRouter's usage.cost is the charge."""
    images = [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(p)}"}}
              for p in (DRAFT, FINAL)]
    answer = {"choices": [{"finish_reason": "stop", "message": {"content": "ok", "images": images}}],
              "usage": {"prompt_tokens": 10, "completion_tokens": 1300, "cost": 0.139,
                        "completion_tokens_details": {"image_tokens": 1120, "reasoning_tokens": 180}}}
    parsed = chat.parse(200, H, body(answer))
    assert parsed.data == FINAL and parsed.skipped_thoughts == 1
    assert parsed.gateway_cost == 0.139 and parsed.tokens.thoughts == 180
    assert parsed.tokens.output_image == 1120


def test_chat_content_filter_is_a_block_not_billed():
    """finish_reason content_filter with no image and no output tokens: blocked, not billed."""
    answer = {"choices": [{"finish_reason": "content_filter",
                           "message": {"role": "assistant", "content": None}}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 0}}
    with pytest.raises(Blocked) as info:
        chat.parse(200, H, body(answer))
    assert info.value.billed == "no" and not info.value.retriable
