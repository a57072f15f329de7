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
    details = {d.modality.value: d.token_count
               for d in response.usage_metadata.candidates_tokens_details}
    assert details["IMAGE"] == sizes.OUTPUT_TOKENS[resolution]
    assert response.usage_metadata.candidates_token_count == sum(details.values())
    assert any("SIMULATED" in (p.text or "") for p in parts)
    assert simulator.log[-1]["size"] == resolution and simulator.log[-1]["aspect"] == aspect


@pytest.mark.parametrize("resolution,aspect", CASES)
def test_openai_sdk_gets_the_documented_pixel_size(simulator, resolution, aspect):
    """A user of the openai SDK with a gateway URL gets b64 images of the right size."""
    from openai import OpenAI

    width, height = sizes.pixels(resolution, aspect)
    with OpenAI(base_url=simulator.url + "/v1", api_key="test-key", max_retries=0) as client:
        result = client.images.generate(model="gemini-3-pro-image-preview", prompt="a lighthouse",
                                        size=f"{width}x{height}", response_format="b64_json")
    image = Image.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert image.size == (width, height)
    assert result.usage.output_tokens == sizes.OUTPUT_TOKENS[resolution]


def test_openai_sdk_url_format_serves_the_image(simulator):
    """Gateways that answer with a URL: the URL really serves the PNG."""
    import httpx
    from openai import OpenAI

    with OpenAI(base_url=simulator.url + "/v1", api_key="k", max_retries=0) as client:
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
    with pytest.raises(openai.AuthenticationError), openai.OpenAI(
            base_url=server.url + "/v1", api_key="wrong", max_retries=0) as client:
        client.images.generate(prompt="x", size="1024x1024", response_format="b64_json")
    client = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=server.url))
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-3-pro-image-preview", contents="x")
    assert info.value.code == 400 and "API key not valid" in str(info.value)
    assert all("wrong" not in str(entry) for entry in server.log)


def test_google_genai_sdk_stream_call_gets_the_image(simulator):
    """The SDK's stream call (streamGenerateContent?alt=sse) gets the image and the usage."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=simulator.url))
    simulator.set_script("thought")
    chunks = list(client.models.generate_content_stream(
        model="gemini-3-pro-image-preview", contents="a lighthouse, streamed",
        config=types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"))))
    parts = [p for c in chunks for p in c.candidates[0].content.parts]
    finals = [p.inline_data.data for p in parts if p.inline_data and not p.thought]
    assert len(chunks) > 1 and len(finals) == 1
    assert Image.open(io.BytesIO(finals[0])).size == sizes.pixels("2K", "16:9")
    usage = chunks[-1].usage_metadata
    assert usage.thoughts_token_count > 0 and chunks[-1].candidates[0].finish_reason == "STOP"
    assert simulator.log[-1]["stream"] == "sse" and simulator.log[-1]["size"] == "2K"


def test_openai_sdk_chat_completions_get_the_image(simulator):
    """The openai SDK's chat call with modalities/image_config gets a data-URL image."""
    from openai import OpenAI

    with OpenAI(base_url=simulator.url + "/v1", api_key="k", max_retries=0) as client:
        result = client.chat.completions.create(
            model="google/gemini-3-pro-image-preview",
            messages=[{"role": "user", "content": "a lighthouse, by chat"}],
            extra_body={"modalities": ["image", "text"],
                        "image_config": {"aspect_ratio": "3:4", "image_size": "4K"}})
    url = result.choices[0].message.model_extra["images"][-1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == sizes.pixels("4K", "3:4")
    assert result.usage.completion_tokens_details.model_extra["image_tokens"] == 2000


@pytest.mark.parametrize("modalities,images", [(["TEXT"], 0), (["TEXT", "IMAGE"], 1)])
def test_text_only_modality_gets_no_image(simulator, modalities, images):
    """Asking for TEXT only gets words and no image, as the real API does."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=simulator.url))
    response = client.models.generate_content(
        model="gemini-3-pro-image-preview", contents="describe a lighthouse",
        config=types.GenerateContentConfig(response_modalities=modalities))
    parts = response.candidates[0].content.parts
    assert sum(1 for p in parts if p.inline_data) == images
    assert any(p.text for p in parts)


def test_google_genai_chat_edits_over_two_turns(simulator):
    """The SDK's chat, which sends the model's turns back with their signatures (URL-safe
    base64 bytes), would get a 400 from the simulator and no second image."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="test-key",
                          http_options=types.HttpOptions(base_url=simulator.url))
    chat = client.chats.create(model="gemini-3-pro-image-preview",
                               config=types.GenerateContentConfig(
                                   response_modalities=["TEXT", "IMAGE"]))
    logo = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(logo, "PNG")
    first = chat.send_message([types.Part.from_bytes(data=logo.getvalue(),
                                                     mime_type="image/png"),
                               "a mug with this logo"])
    second = chat.send_message("make the mug blue")
    for response in (first, second):
        images = [p.inline_data.data for p in response.candidates[0].content.parts
                  if p.inline_data and not p.thought]
        assert len(images) == 1 and Image.open(io.BytesIO(images[0])).size == (1024, 1024)
    assert [(e["turn"], e["status"]) for e in simulator.log] == [(1, 200), (2, 200)]
    assert simulator.log[-1]["prompt"] == "make the mug blue"
    sent = chat.get_history()
    assert [c.role for c in sent] == ["user", "model", "user", "model"]
    assert all(p.thought_signature for p in sent[1].parts if not p.thought)
