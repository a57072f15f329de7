"""Reference images on OpenAI-compatible gateways: /v1/images/edits, multipart `image[]`."""

from __future__ import annotations

import pytest
from PIL import Image

import nbp_jupyter as nbp
from nbp_jupyter import sizes
from nbp_jupyter.errors import ConfigError

SCALE = 0.05


def _refs(tmp_path, n=2):
    paths = []
    for i in range(n):
        path = tmp_path / f"ref{i}.png"
        Image.new("RGB", (32, 32), (40 * i, 90, 200)).save(path)
        paths.append(path)
    return paths


def test_references_on_the_images_wire_go_to_the_edits_route(home, simulator, tmp_path):
    """With --image on an OpenAI gateway the job used to be refused outright."""
    result = nbp.generate("put the logo on the mug", provider="openai", base_url=simulator.url,
                          api_key="k", model="nano-banana-pro", images=_refs(tmp_path, 3),
                          aspect="16:9", fallback=False)
    assert result.success, result.error
    assert (result.width, result.height) == sizes.pixels("1K", "16:9")
    [entry] = simulator.app.log
    assert entry["path"] == "/v1/images/edits" and entry["references"] == 3
    assert entry["aspect"] == "16:9" and entry["prompt"] == "put the logo on the mug"


def test_a_gateway_without_edits_is_one_line_naming_gemini(home, make_sim, tmp_path):
    """A gateway with no edits route would be retried as a server fault, or a 404 said
    'check the model name', which is not the problem."""
    server = make_sim(profile="ideal", edits=False)
    result = nbp.generate("put the logo on the mug", provider="openai", base_url=server.url,
                          api_key="k", images=_refs(tmp_path), retries=2, fallback=False)
    assert not result.success
    assert len(result.attempts) == 1  # not retried: it will never work
    assert "does not edit images" in result.error and "provider='gemini'" in result.error
    assert "\n" not in result.error


def test_edit_puts_the_image_first_and_the_references_after(home, simulator, tmp_path):
    """nbp_jupyter.edit is the helper refine builds on: the edited image must lead."""
    photo, logo = _refs(tmp_path)
    job = nbp.edit(photo, "make the sky darker", references=logo, provider="gemini",
                   base_url=simulator.url, api_key="k", fallback=False)
    assert [r.name for r in job.request.images] == [photo.name, logo.name]
    assert job.result().success
    assert simulator.app.log[0]["references"] == 2
    with pytest.raises(ConfigError, match="references="):
        nbp.edit(photo, "x", images=[logo])


def test_edits_reach_gemini_through_a_real_litellm_proxy(home, litellm_gateway, tmp_path):
    """LiteLLM carries /v1/images/edits to Gemini: the references must arrive upstream."""
    sim = litellm_gateway.sim
    before = len(sim.app.log)
    result = nbp.generate("a mug with this logo", provider="openai", base_url=litellm_gateway.url,
                          api_key=litellm_gateway.key, model=litellm_gateway.model,
                          images=_refs(tmp_path, 2), time_scale=SCALE, fallback=False)
    assert result.success, result.error
    upstream = sim.app.log[before:]
    assert [e["provider"] for e in upstream] == ["gemini"]  # LiteLLM called generateContent
    assert upstream[0]["references"] == 2 and upstream[0]["prompt"] == "a mug with this logo"


def test_chat_wire_references_reach_gemini_through_a_real_litellm_proxy(home, litellm_gateway,
                                                                        tmp_path):
    """On the chat wire the references travel as image_url parts; LiteLLM must pass them on."""
    sim = litellm_gateway.sim
    before = len(sim.app.log)
    result = nbp.generate("a poster with these two", provider="chat",
                          base_url=litellm_gateway.url, api_key=litellm_gateway.key,
                          model=litellm_gateway.model, images=_refs(tmp_path, 2),
                          time_scale=SCALE, fallback=False)
    assert result.success, result.error
    upstream = sim.app.log[before:]
    assert [e["provider"] for e in upstream] == ["gemini"]
    assert upstream[0]["references"] == 2
