"""The Gemini wire as the official SDK and the real service speak it: the server deadline
header, snake_case field names, and what we send and record (docs/facts.md)."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

import nbp_jupyter as nbp
from nbp_jupyter import history, sizes

GEMINI = "/v1beta/models/gemini-3-pro-image-preview:generateContent"
KEY = {"x-goog-api-key": "test-key"}
BODY = {"contents": [{"role": "user", "parts": [{"text": "a red fox"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}


@pytest.mark.parametrize("script,header,status", [
    ("ok:100s", "30", 504),    # slower than the caller's deadline: cut at it
    ("ok:100s", "300", 200),   # within it
    ("ok:700s", None, 504),    # no header: the published 600 s server limit
    ("ok:100s", None, 200),
])
def test_simulator_honours_x_server_timeout(make_sim, script, header, status):
    """The server gives up at the caller's X-Server-Timeout (504 DEADLINE_EXCEEDED), and at
    its own 600 s limit without one."""
    server = make_sim(profile="ideal", script=script)
    headers = KEY | ({"x-server-timeout": header} if header else {})
    answer = httpx.post(server.url + GEMINI, json=BODY, headers=headers, timeout=10)
    assert answer.status_code == status
    if status == 504:
        assert answer.json()["error"]["status"] == "DEADLINE_EXCEEDED"


def test_simulator_reads_snake_case_fields(make_sim):
    """generation_config / image_config / image_size, as the real API accepts (and LiteLLM's
    chat route sends), are read, not silently ignored."""
    server = make_sim(profile="ideal")
    body = {"contents": [{"parts": [{"text": "a red fox"}]}],
            "generation_config": {"response_modalities": ["IMAGE", "TEXT"],
                                  "image_config": {"aspect_ratio": "16:9", "image_size": "2K"}}}
    answer = httpx.post(server.url + GEMINI, json=body, headers=KEY, timeout=10)
    parts = answer.json()["candidates"][0]["content"]["parts"]
    [data] = [p["inlineData"]["data"] for p in parts if "inlineData" in p]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == sizes.pixels("2K", "16:9")


def test_client_sends_the_attempts_timeout_and_its_name(home, make_sim):
    """Each attempt tells the server its own timeout (X-Server-Timeout) and who we are."""
    server = make_sim(profile="ideal", time_scale=0.01)
    result = nbp.generate("a fox", provider="gemini", base_url=server.url, api_key="k",
                          timeout=77, time_scale=0.01)
    assert result.success
    assert server.log[-1]["server_timeout"] == "77"
    assert server.log[-1]["user_agent"] == f"nbp-jupyter/{nbp.__version__}"


def test_ledger_keeps_the_token_breakdown(home, make_sim):
    """Every attempt's tokens by kind reach the ledger, the totals and the pandas view."""
    server = make_sim(profile="ideal", time_scale=0.01, script="thought")
    result = nbp.generate("a fox that thinks first", provider="gemini", base_url=server.url,
                          api_key="k", size="2K", time_scale=0.01)
    attempt = history().to_pandas(attempts=True).iloc[0]
    assert attempt["output_image_tokens"] == 1120
    assert attempt["thought_tokens"] == 300 and attempt["output_text_tokens"] > 0
    assert attempt["input_text_tokens"] > 0
    # thinking is billed at the text rate on top of the image (docs/facts.md)
    assert result.cost_usd > 1120 * 120e-6 + 300 * 12e-6
    totals = history().totals()["tokens"]
    assert totals["output_image"] == 1120 and totals["thought"] == 300


def test_history_table_totals_the_tokens(home, make_sim):
    """%nbp_history's totals line names the tokens by kind, thinking included."""
    from nbp_jupyter.magics import history_html

    server = make_sim(profile="ideal", time_scale=0.01, script="thought")
    nbp.generate("a fox that thinks first", provider="gemini", base_url=server.url,
                 api_key="k", size="4K", time_scale=0.01)
    html = history_html(history())
    assert "tokens: " in html and "output_image 2,000" in html and "thought 300" in html
