"""The official SDKs work unchanged against the simulator (wire compatibility)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from nbp_jupyter import sizes

CASES = [(res, aspect) for res in sizes.RESOLUTIONS for aspect in ("1:1", "16:9", "3:4", "21:9")]


@pytest.mark.parametrize("resolution,aspect", CASES)
def test_google_genai_sdk_gets_the_documented_pixel_size(simulator, resolution, aspect):
    """A user of google-genai pointed at the simulator gets a real image of the right size."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=simulator.url))
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview", contents="a lighthouse at dusk",
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(aspect_ratio=aspect, image_size=resolution)))
    parts = response.candidates[0].content.parts
    images = [p.inline_data.data for p in parts if p.inline_data and not p.thought]
    assert len(images) == 1
    assert Image.open(io.BytesIO(images[0])).size == sizes.pixels(resolution, aspect)
    assert response.usage_metadata.candidates_token_count == sizes.OUTPUT_TOKENS[resolution]
    assert any("SIMULATED" in (p.text or "") for p in parts)
    assert simulator.log[-1]["size"] == resolution and simulator.log[-1]["aspect"] == aspect


@pytest.mark.parametrize("resolution,aspect", CASES)
def test_openai_sdk_gets_the_documented_pixel_size(simulator, resolution, aspect):
    """A user of the openai SDK with a gateway URL gets b64 images of the right size."""
    from openai import OpenAI

    width, height = sizes.pixels(resolution, aspect)
    client = OpenAI(base_url=simulator.url + "/v1", api_key="test-key", max_retries=0)
    result = client.images.generate(model="gemini-3-pro-image-preview", prompt="a lighthouse",
                                    size=f"{width}x{height}", response_format="b64_json")
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.size == (width, height)
    assert result.usage.output_tokens == sizes.OUTPUT_TOKENS[resolution]


def test_openai_sdk_url_format_serves_the_image(simulator):
    """Gateways that answer with a URL: the URL really serves the PNG."""
    import httpx
    from openai import OpenAI

    client = OpenAI(base_url=simulator.url + "/v1", api_key="k", max_retries=0)
    result = client.images.generate(model="nano-banana-pro-4k", prompt="tiers in the name",
                                    size="1376x768", response_format="url")
    png = httpx.get(result.data[0].url).content
    assert Image.open(io.BytesIO(png)).size == sizes.pixels("4K", "16:9")


def test_sdk_sees_real_auth_errors(make_sim):
    """A wrong key gets the real services' error, which the SDKs turn into their own errors."""
    import openai
    from google import genai
    from google.genai import errors, types

    server = make_sim(profile="ideal", api_key="right")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).images.generate(
            prompt="x", size="1024x1024", response_format="b64_json")
    client = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=server.url))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-3-pro-image-preview", contents="x")
    assert info.value.code == 400 and "API key not valid" in str(info.value)
    assert all("wrong" not in str(entry) for entry in server.log)
