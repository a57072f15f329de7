"""A fallback step on another provider: its own endpoint, its own key, its own price."""

from __future__ import annotations

import pytest

import nbp_jupyter as nbp
from nbp_jupyter import jobs, pricing
from nbp_jupyter.store import Store

GEMINI_KEY = "gemini-side-test-key"
GATEWAY_KEY = "gateway-side-test-key"


@pytest.fixture
def two_endpoints(home, make_sim, monkeypatch):
    """A failing Gemini endpoint and a healthy gateway, each accepting only its own key."""
    gemini = make_sim(profile="ideal", time_scale=0.01, script="500, 500, 500",
                      api_key=GEMINI_KEY)
    gateway = make_sim(profile="ideal", time_scale=0.01, api_key=GATEWAY_KEY)
    monkeypatch.setenv("NBP_API_KEY", GEMINI_KEY)  # the main provider's key only
    monkeypatch.setenv("OPENAI_API_KEY", GATEWAY_KEY)
    monkeypatch.setenv("NBP_OPENAI_BASE_URL", gateway.url)
    return gemini, gateway


def test_steps_to_the_other_provider_with_its_own_key(two_endpoints, home):
    gemini, gateway = two_endpoints
    result = nbp.generate("a heron at dawn", size="1K", provider="gemini", base_url=gemini.url,
                          retries=0, fallback="openai:1K", time_scale=0.01)
    assert result.success, result.error
    assert [(a.provider, a.outcome) for a in result.attempts] == [
        ("gemini", "server_error"), ("openai", "ok")]
    # each server saw only its own wire format, and accepted the key it was sent
    assert [(e["provider"], e["outcome"]) for e in gemini.log] == [("gemini", "server_error")]
    assert [(e["provider"], e["outcome"]) for e in gateway.log] == [("openai", "ok")]
    assert result.cost_usd == pytest.approx(pricing.image_price(result.model, "1K"))
    assert result.model == nbp.config.DEFAULT_MODELS["openai"]
    jobs.reset_session()
    store = Store(home)
    assert [a["provider"] for a in store.attempts(result.job_id)] == ["gemini", "openai"]
    store.close()
    blob = repr(result) + "".join(a.detail for a in result.attempts) + str(gemini.log + gateway.log)
    for key in (GEMINI_KEY, GATEWAY_KEY):  # neither key is kept anywhere
        assert key not in blob
        for path in home.rglob("*"):  # ledger, its WAL, images
            assert not path.is_file() or key.encode() not in path.read_bytes(), path


def test_a_missing_key_for_the_fallback_provider_is_refused_before_sending(
        two_endpoints, monkeypatch):
    gemini, gateway = two_endpoints
    monkeypatch.delenv("OPENAI_API_KEY")  # NBP_API_KEY is set, and must not stand in for it
    with pytest.raises(nbp.ConfigError) as refused:
        nbp.submit("a heron", provider="gemini", base_url=gemini.url, fallback="openai:1K")
    assert "set OPENAI_API_KEY" in refused.value.one_line()
    assert gemini.log == [] and gateway.log == []


def test_plain_http_to_a_remote_fallback_endpoint_is_refused(two_endpoints, monkeypatch):
    gemini, _ = two_endpoints
    monkeypatch.setenv("NBP_OPENAI_BASE_URL", "http://gateway.example.com")
    with pytest.raises(nbp.ConfigError, match="plain http"):
        nbp.submit("a heron", provider="gemini", base_url=gemini.url, fallback="openai:1K")
    assert gemini.log == []


def test_an_unknown_fallback_provider_is_one_clear_error(home, simulator):
    with pytest.raises(nbp.ConfigError, match="unknown provider 'opneai'"):
        nbp.submit("a heron", provider="sim", base_url=simulator.url, fallback="opneai:1K")
