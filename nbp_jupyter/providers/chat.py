"""Chat completions with image output, as OpenRouter, Vercel AI Gateway and LiteLLM serve
Gemini image models: `POST {base}/v1/chat/completions` with `modalities` and `image_config`;
the image comes back as a data URL in `choices[0].message.images` (docs/facts.md)."""

from __future__ import annotations

import httpx

from ..errors import AttemptError, BadResponse, Blocked
from ..types import Request
from .base import (SIM_HEADER, ParsedImage, bearer_post, gateway_cost, image_ref, load_json,
                   one_line)
from .json_body import Base64
from .openai import error_from, usage_tokens

NAME = "chat"
KEY_HINT = "set OPENROUTER_API_KEY (or NBP_API_KEY) to your gateway's key"
BLOCKED_REASONS = frozenset({"content_filter", "safety"})


def build(request: Request, resolution: str, model: str, base_url: str, api_key: str, *,
          timeout_s: float | None = None) -> httpx.Request:
    content: str | list[dict] = request.prompt
    if request.images:
        content = [{"type": "text", "text": request.prompt}] + [
            {"type": "image_url", "image_url": {
                "url": Base64(image.data, prefix=f"data:{image.mime};base64,")}}
            for image in request.images]
    body = {"model": model, "messages": [{"role": "user", "content": content}],
            "modalities": ["image", "text"],
            "image_config": {"aspect_ratio": request.aspect, "image_size": resolution}}
    return bearer_post(f"{base_url}/v1/chat/completions", api_key, body)


def parse(status: int, headers, body: bytes, blobs=None) -> ParsedImage:
    """The image in an answer; `blobs` holds the large strings the answer stream spilled."""
    if status != 200:
        raise error_from(status, headers, body, KEY_HINT)
    data = load_json(status, headers, body)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens = usage_tokens(usage, "prompt_tokens", "completion_tokens")
    # OpenRouter states its charge in usage.cost; LiteLLM in a header.
    stated = usage.get("cost")
    charged = float(stated) if isinstance(stated, (int, float)) and not isinstance(stated, bool) \
        else gateway_cost(headers)
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and \
        isinstance(choices[0], dict) else None
    if choice is None:
        raise BadResponse("HTTP 200 without choices", http_status=200, billed="unknown")
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    urls = [image["image_url"].get("url") for image in message.get("images") or []
            if isinstance(image, dict) and isinstance(image.get("image_url"), dict)]
    said = message.get("content") if isinstance(message.get("content"), str) else ""
    if not urls:
        reason = str(choice.get("finish_reason") or "")
        paid = bool(tokens.output_image or tokens.output_text or tokens.thoughts)
        billed = "yes" if paid else "no" if tokens.output_image == 0 else "unknown"
        text = f": {one_line(said, 120)}" if said else ""
        error: type[AttemptError] = Blocked if reason in BLOCKED_REASONS else BadResponse
        raise error(f"HTTP 200 without an image (finish_reason {reason or 'missing'}){text}",
                    http_status=200, billed=billed, tokens=tokens, gateway_cost=charged,
                    hint=None if error is Blocked else
                    "the model answered without an image; another try may work")
    # Thinking drafts come first, the answer last (as in Gemini's parts).
    return ParsedImage(**image_ref(urls[-1], "message.images", blobs), tokens=tokens,
                       text=said.strip(), simulated=headers.get(SIM_HEADER) == "true",
                       skipped_thoughts=len(urls) - 1, gateway_cost=charged)
