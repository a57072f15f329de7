"""Through a real LiteLLM proxy, set up as its docs show, in front of the simulator: each of
our wires at several sizes, and the simulator's faults as the gateway passes them on.
docs/gateway-matrix.md is the table of what these tests pin down."""

from __future__ import annotations

import httpx
import pytest
from PIL import Image

import nbp_jupyter as nbp
from nbp_jupyter import display, history, sizes
from nbp_jupyter.events import AttemptFailed

SCALE = 0.05  # our client's clock: a 20 s retry delay waits 1 s


def run(gateway, provider, **kw):
    kw.setdefault("time_scale", SCALE)
    kw.setdefault("fallback", False)
    return nbp.generate(kw.pop("prompt", "a lighthouse through a gateway"), provider=provider,
                        base_url=gateway.url, api_key=gateway.key, model=gateway.model, **kw)


def ledger_attempts(job_id):
    [record] = [r for r in history() if r["id"] == job_id]
    return record["attempts"]


def test_the_gateway_refuses_what_we_used_to_send(litellm_gateway):
    """The fixture is a real default gateway: response_format gets its 400, as users saw."""
    with httpx.Client(trust_env=False) as client:
        answer = client.post(f"{litellm_gateway.url}/v1/images/generations",
                             headers={"authorization": f"Bearer {litellm_gateway.key}"},
                             json={"model": litellm_gateway.model, "prompt": "p",
                                   "size": "1024x1024", "n": 1, "response_format": "b64_json"},
                             timeout=60)
    assert answer.status_code == 400 and "UnsupportedParamsError" in answer.text


CASES = [("openai", "1K", "1:1"), ("openai", "2K", "16:9"), ("openai", "4K", "3:4"),
         ("openai", "4K", "21:9"), ("gemini", "1K", "4:5"), ("gemini", "4K", "16:9"),
         ("chat", "2K", "9:16"), ("chat", "4K", "1:1")]


@pytest.mark.parametrize("provider,size,aspect", CASES)
def test_each_wire_gets_the_asked_image_through_the_gateway(home, litellm_gateway, provider,
                                                           size, aspect):
    """The image comes through at the asked pixels, priced at the gateway's own figure."""
    litellm_gateway.sim.set_script(None)
    result = run(litellm_gateway, provider, size=size, aspect=aspect)
    assert result.success, result.error
    assert (result.width, result.height) == sizes.pixels(size, aspect)
    with Image.open(result.image_path) as image:
        assert image.size == sizes.pixels(size, aspect)
    [attempt] = ledger_attempts(result.job_id)
    assert attempt["output_image_tokens"] == sizes.OUTPUT_TOKENS[size]
    # LiteLLM's x-litellm-response-cost: image tokens at $120/M plus the small rest
    assert attempt["cost_usd"] == pytest.approx(sizes.OUTPUT_TOKENS[size] * 120e-6, abs=0.002)
    assert litellm_gateway.sim.log[-1]["size"] == size
    assert litellm_gateway.sim.log[-1]["aspect"] == aspect


@pytest.mark.parametrize("provider", ["openai", "gemini", "chat"])
def test_draft_images_are_never_kept(home, litellm_gateway, provider):
    """A thinking draft that LiteLLM passes on as an extra image is skipped: the final is kept."""
    litellm_gateway.sim.set_script("thought")
    result = run(litellm_gateway, provider, size="1K", aspect="16:9")
    assert result.success and (result.width, result.height) == sizes.pixels("1K", "16:9")
    assert "skipped 1 draft" in result.attempts[0].detail


@pytest.mark.parametrize("provider", ["openai", "gemini", "chat"])
def test_gateway_503_after_its_retries_is_retried_by_us(home, litellm_gateway, provider):
    """Three 503s use up the gateway's own two retries; its 500 is retried by us, as overloaded,
    and the status line says the gateway retried."""
    litellm_gateway.sim.set_script("503, 503, 503")
    lines = []

    def watch(job, event):
        if isinstance(event, AttemptFailed):
            lines.append(display.status_text(job, None, SCALE))

    result = nbp.submit("a lighthouse through a gateway", provider=provider, size="1K",
                        retries=2, base_url=litellm_gateway.url, api_key=litellm_gateway.key,
                        model=litellm_gateway.model, time_scale=SCALE, fallback=False,
                        listener=watch).result()
    assert result.success
    assert "last: overloaded after the gateway's own retries" in lines[0]
    first = result.attempts[0]
    assert (first.outcome, first.http_status, first.billed) == ("overloaded", 500, "no")
    assert "gateway" in first.detail and "retried" in first.detail


@pytest.mark.parametrize("provider", ["openai", "chat"])
def test_retry_delay_in_the_gateways_message_is_waited(home, litellm_gateway, provider):
    """LiteLLM drops Retry-After but keeps Google's retryDelay in the text: we wait 20 s."""
    litellm_gateway.sim.set_script("429:20s, 429:20s, 429:20s")
    result = run(litellm_gateway, provider, size="1K", retries=2)
    assert result.success
    assert result.attempts[0].outcome == "rate_limited"
    assert result.attempts[1].waited_s == pytest.approx(20.0)


def test_no_image_answer_is_not_billed(home, litellm_gateway):
    """Gemini's safety block comes through LiteLLM's images route as data: [] with zero output
    tokens: recorded as not billed, and tried again."""
    litellm_gateway.sim.set_script("safety")
    result = run(litellm_gateway, "openai", size="1K", retries=1)
    assert result.success
    first = ledger_attempts(result.job_id)[0]
    assert (first["outcome"], first["billed"], first["cost_usd"]) == ("bad_response", "no", 0)
    assert result.cost_unknown_usd == 0


@pytest.mark.parametrize("provider,outcome", [("gemini", "blocked"), ("chat", "blocked")])
def test_safety_block_stops_at_once(home, litellm_gateway, provider, outcome):
    """A safety block through the native and chat routes is final and not billed."""
    litellm_gateway.sim.set_script("safety")
    result = run(litellm_gateway, provider, size="1K", retries=2)
    assert not result.success
    assert [(a.outcome, a.billed) for a in result.attempts] == [(outcome, "no")]


@pytest.mark.parametrize("provider", ["openai", "gemini", "chat"])
def test_truncated_upstream_answer_ends_in_an_image(home, litellm_gateway, provider):
    """Half a JSON body from Gemini: the gateway retries it or says so; either way we end
    with the image and the cut-short call is never counted as paid."""
    litellm_gateway.sim.set_script("truncated")
    result = run(litellm_gateway, provider, size="1K", retries=2)
    assert result.success
    assert all(a.billed != "yes" for a in result.attempts[:-1])


def test_hang_behind_the_gateway_times_out_as_unknown_cost(home, litellm_gateway):
    """A call that never comes back is cut at our timeout, counted as maybe billed."""
    litellm_gateway.sim.set_script("hang")
    result = run(litellm_gateway, "openai", size="1K", retries=1, timeout=40)
    assert result.success
    first = result.attempts[0]
    assert (first.outcome, first.billed) == ("timeout", "unknown")
    assert result.cost_unknown_usd > 0
