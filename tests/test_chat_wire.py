"""The chat-completions wire (provider `chat`, alias `openrouter`) against the simulator,
and as a fallback step (`chat:4K`)."""

from __future__ import annotations

import pytest

import nbp_jupyter as nbp
from nbp_jupyter import config, sizes

CHAT_KEY = "chat-side-test-key"


@pytest.mark.parametrize("size,aspect", [("1K", "1:1"), ("2K", "21:9"), ("4K", "2:3")])
def test_chat_wire_delivers_the_asked_image(home, make_sim, size, aspect):
    """provider='chat' gets the asked pixels from a data-URL image, priced by its tokens."""
    server = make_sim(profile="ideal", time_scale=0.01)
    result = nbp.generate("a heron by chat", provider="chat", base_url=server.url,
                          api_key="k", size=size, aspect=aspect, time_scale=0.01)
    assert result.success, result.error
    assert (result.width, result.height) == sizes.pixels(size, aspect)
    assert server.log[-1]["provider"] == "chat" and server.log[-1]["size"] == size
    assert result.cost_usd == pytest.approx(sizes.OUTPUT_TOKENS[size] * 120e-6, abs=0.002)


def test_openrouter_is_chat_at_openrouters_address(home, monkeypatch):
    """provider='openrouter' speaks chat to OpenRouter's public URL with OPENROUTER_API_KEY."""
    monkeypatch.setenv("OPENROUTER_API_KEY", "or-key")
    settings = config.resolve(provider="openrouter")
    assert settings.wire == "chat" and settings.base_url == "https://openrouter.ai/api"
    assert settings.model == "google/gemini-3-pro-image-preview"
    assert config.default_provider() == "openrouter"
    assert "or-key" not in repr(settings) and "or-key" not in str(settings.describe())


def test_ladder_steps_to_chat_at_the_same_size(home, make_sim, monkeypatch):
    """Gemini overloaded at 4K: the `chat:4K` step gets the 4K image from the chat endpoint."""
    gemini = make_sim(profile="ideal", time_scale=0.01, script="503, 503, 503")
    gateway = make_sim(profile="ideal", time_scale=0.01, api_key=CHAT_KEY)
    monkeypatch.setenv("OPENROUTER_API_KEY", CHAT_KEY)
    monkeypatch.setenv("NBP_CHAT_BASE_URL", gateway.url)
    result = nbp.generate("a heron at dawn", size="4K", provider="gemini", base_url=gemini.url,
                          api_key="g", retries=0, fallback="chat:4K", time_scale=0.01)
    assert result.success, result.error
    assert [(a.provider, a.resolution, a.outcome) for a in result.attempts] == [
        ("gemini", "4K", "overloaded"), ("chat", "4K", "ok")]
    assert [e["provider"] for e in gateway.log] == ["chat"]
    assert (result.width, result.height) == sizes.pixels("4K", "1:1")
