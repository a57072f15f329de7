"""OpenAI-compatible `/v1/images/generations`, as gateways reselling Nano Banana Pro speak it.

Only `model`, `prompt` and `size` are sent: gateways in front of Gemini refuse what Gemini
cannot do (LiteLLM without drop_params answers `response_format` and `n` with HTTP 400), and
the image may come back as `b64_json`, an http(s) URL or a `data:` URL (docs/facts.md).
"""

from __future__ import annotations

import httpx

from .. import sizes
from ..errors import AttemptError, BadResponse, Blocked, ConfigError, from_status
from ..pricing import Tokens
from ..types import Request
from .base import (SIM_HEADER, ParsedImage, bearer_post, from_gateway, gateway_cost,
                   header_retry_after, image_ref, int_or_none, load_json, one_line)

NAME = "openai"
KEY_HINT = "set OPENAI_API_KEY (or NBP_API_KEY) to your gateway's key"
POLICY_CODES = frozenset({"content_policy_violation", "moderation_blocked", "safety"})
UPSTREAM_MANGLED = "Error converting to valid response"


def build(request: Request, resolution: str, model: str, base_url: str, api_key: str, *,
          timeout_s: float | None = None) -> httpx.Request:
    if request.images:  # the engine sends these through openai_edits: a caller's slip
        raise ConfigError("reference images are not part of /v1/images/generations",
                          hint="build it with providers.openai_edits")
    width, height = sizes.pixels(resolution, request.aspect)
    body = {"model": model, "prompt": request.prompt, "size": f"{width}x{height}"}
    return bearer_post(f"{base_url}/v1/images/generations", api_key, body)


def parse(status: int, headers, body: bytes, blobs=None) -> ParsedImage:
    """The image in an answer; `blobs` holds the large strings the answer stream spilled."""
    if status != 200:
        raise _error(status, headers, body)
    data = load_json(status, headers, body)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens = usage_tokens(usage, "input_tokens", "output_tokens")
    charged = gateway_cost(headers)
    items = [item for item in data.get("data") or [] if isinstance(item, dict)] \
        if isinstance(data.get("data"), list) else []
    if not items:
        # Zero output tokens: the model made nothing and the gateway billed no image.
        nothing = tokens.output_image == 0 and not tokens.output_text and not tokens.thoughts
        billed = "no" if nothing else "unknown"
        raise BadResponse("HTTP 200 without an image (empty data)", http_status=200,
                          billed=billed, tokens=tokens, gateway_cost=charged,
                          hint="the gateway made no image; another try may work")
    # Gemini's thinking drafts come first (LiteLLM returns them as extra data[] items):
    # the answer is the last image.
    item = items[-1]
    picture = item.get("b64_json") or item.get("url")
    if not picture:
        raise BadResponse("HTTP 200: the image item has neither b64_json nor url",
                          http_status=200, billed="unknown")
    image = image_ref(picture, "b64_json" if item.get("b64_json") else "url", blobs)
    return ParsedImage(**image, tokens=tokens, text=one_line(item.get("revised_prompt") or ""),
                       simulated=headers.get(SIM_HEADER) == "true",
                       skipped_thoughts=len(items) - 1, gateway_cost=charged)


def usage_tokens(usage: dict, input_key: str, output_key: str) -> Tokens:
    """Tokens from an OpenAI-style usage object (images: input/output_tokens; chat:
    prompt/completion_tokens), with the per-modality details gateways add."""
    out_details = usage.get(f"{output_key}_details")
    out_details = out_details if isinstance(out_details, dict) else {}
    in_details = usage.get(f"{input_key}_details")
    in_details = in_details if isinstance(in_details, dict) else {}
    output = int_or_none(usage.get(output_key))
    image_out = int_or_none(out_details.get("image_tokens"))
    text_out = int_or_none(out_details.get("text_tokens"))
    reasoning = int_or_none(out_details.get("reasoning_tokens"))
    if image_out is None and output is not None:  # no split: all of it is the image
        image_out = output - (text_out or 0) - (reasoning or 0)
    return Tokens(input_text=int_or_none(in_details.get("text_tokens"))
                  if in_details else int_or_none(usage.get(input_key)),
                  input_image=int_or_none(in_details.get("image_tokens")),
                  output_image=image_out, output_text=text_out, thoughts=reasoning)


def error_from(status: int, headers, body: bytes, key_hint: str) -> AttemptError:
    """The typed error for a gateway's non-200 answer (shared with the chat wire)."""
    retry = header_retry_after(headers)
    try:
        data = load_json(status, headers, body)
    except AttemptError as exc:  # HTML from a proxy, or garbage: the status still decides
        return from_status(status, str(exc).split(": ", 1)[-1], retry_after_s=retry)
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    raw = str(error.get("message") or "error")
    message = one_line(raw)
    if error.get("code") in POLICY_CODES:
        return Blocked(f"HTTP {status}: {message}", http_status=status)
    if status == 422 and UPSTREAM_MANGLED in raw:  # LiteLLM could not read Gemini's answer
        return BadResponse(f"HTTP {status}: {message}", http_status=status, billed="unknown",
                           hint="the answer behind the gateway was cut short; another try may work")
    return from_gateway(from_status(status, message, retry_after_s=retry, key_hint=key_hint),
                        headers, raw)


def _error(status: int, headers, body: bytes) -> AttemptError:
    return error_from(status, headers, body, KEY_HINT)
