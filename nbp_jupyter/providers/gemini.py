"""Gemini `generateContent` for image models (docs/facts.md "Gemini wire format")."""

from __future__ import annotations

import math
import re

import httpx

from .. import grounding
from ..errors import AttemptError, AuthError, BadResponse, Blocked, from_status
from ..types import Request
from ..pricing import Tokens
from . import json_body
from .gemini_turns import answer_parts, contents
from .base import (SIM_HEADER, ParsedImage, from_gateway, gateway_cost, header_retry_after,
                   image_payload, int_or_none, load_json, one_line)

NAME = "gemini"
SAFETY_REASONS = frozenset({"SAFETY", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT",
                            "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
                            "IMAGE_RECITATION"})
KEY_HINT = "set GEMINI_API_KEY (or GOOGLE_API_KEY / NBP_API_KEY) to a valid key"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def build(request: Request, resolution: str, model: str, base_url: str, api_key: str, *,
          timeout_s: float | None = None) -> httpx.Request:
    headers = {"x-goog-api-key": api_key, "content-type": "application/json"}
    if timeout_s:  # the server's deadline matches ours, as the official SDKs do (docs/facts.md)
        headers["x-server-timeout"] = str(math.ceil(timeout_s))
    content = json_body.dumps(request_body(request, resolution))
    return httpx.Request("POST", f"{base_url}/v1beta/models/{model}:generateContent",
                         headers=headers, content=content)


def request_body(request: Request, resolution: str) -> dict:
    """The GenerateContentRequest, its images as json_body.Base64 for json_body.dumps."""
    parts: list[dict] = [{"text": request.prompt}]
    for image in request.images:
        parts.append({"inlineData": {"mimeType": image.mime,
                                     "data": json_body.Base64(image.data)}})
    found = {"contents": contents(request.history) + [{"role": "user", "parts": parts}],
             "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                  "imageConfig": {"aspectRatio": request.aspect,
                                                  "imageSize": resolution}}}
    if request.search:
        found["tools"] = [grounding.TOOL]
    return found


def usage_tokens(usage: object) -> Tokens | None:
    """usageMetadata split by modality; without details all candidate tokens are image."""
    if not isinstance(usage, dict):
        return None

    def by_modality(key: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for row in usage.get(key) or []:
            if isinstance(row, dict) and int_or_none(row.get("tokenCount")) is not None:
                modality = str(row.get("modality", "")).upper()
                found[modality] = found.get(modality, 0) + row["tokenCount"]
        return found

    prompt, out = by_modality("promptTokensDetails"), by_modality("candidatesTokensDetails")
    prompt_total = int_or_none(usage.get("promptTokenCount"))
    out_total = int_or_none(usage.get("candidatesTokenCount"))
    image_in = prompt.get("IMAGE")
    text_in = prompt.get("TEXT") if prompt else (
        None if prompt_total is None else prompt_total - (image_in or 0))
    image_out = out.get("IMAGE") if out else out_total
    return Tokens(input_text=text_in, input_image=image_in, output_image=image_out,
                  output_text=out.get("TEXT") if out else None,
                  thoughts=int_or_none(usage.get("thoughtsTokenCount")))


def parse(status: int, headers, body: bytes, blobs=None) -> ParsedImage:
    """The image in an answer; `blobs` holds the large strings the answer stream spilled."""
    if status != 200:
        raise _error(status, headers, body)
    data = load_json(status, headers, body)
    tokens = usage_tokens(data.get("usageMetadata"))
    out_tokens = tokens.output_image if tokens else None
    charged = gateway_cost(headers)
    feedback = data.get("promptFeedback") or {}
    if isinstance(feedback, dict) and feedback.get("blockReason"):
        raise Blocked(f"prompt blocked ({feedback['blockReason']})", http_status=200)
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise BadResponse("HTTP 200 without candidates", http_status=200, billed="unknown")
    candidate = candidates[0]
    content = candidate.get("content") or {}
    parts = content.get("parts") if isinstance(content, dict) else None
    texts, images, thoughts = [], [], 0
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        inline = part.get("inlineData")
        if isinstance(inline, dict):
            if part.get("thought"):
                thoughts += 1  # a draft of the model's thinking, not the answer
            else:
                images.append(inline)
        elif isinstance(part.get("text"), str) and not part.get("thought"):
            texts.append(part["text"])
    reason = str(candidate.get("finishReason") or "")
    if len(images) > 1:  # one was asked: which one would be a guess
        raise BadResponse(f"the answer holds {len(images)} images where one was asked",
                          http_status=200, billed="yes" if out_tokens else "unknown",
                          tokens=tokens, gateway_cost=charged)
    if not images:
        said = f": {one_line(' '.join(texts), 120)}" if texts else ""
        # Thinking is billed even when no image came (docs/facts.md "Per-modality cost").
        paid = tokens is not None and bool(out_tokens or tokens.output_text or tokens.thoughts)
        billed = "yes" if paid else "no"
        if reason in SAFETY_REASONS:
            raise Blocked(f"no image: finishReason {reason}{said}", http_status=200,
                          billed=billed, tokens=tokens, gateway_cost=charged)
        raise BadResponse(f"HTTP 200 without an image (finishReason {reason or 'missing'}){said}",
                          http_status=200, billed=billed, tokens=tokens, gateway_cost=charged,
                          hint="the model answered without an image; another try may work")
    image = images[0]
    return ParsedImage(
        **image_payload(image.get("data"), "inlineData", blobs),
        mime=str(image.get("mimeType") or ""), tokens=tokens, text="\n".join(texts).strip(),
        simulated=headers.get(SIM_HEADER) == "true", skipped_thoughts=thoughts,
        gateway_cost=charged, turn_parts=answer_parts(parts or []),
        grounding=grounding.read(candidate))


def _error(status: int, headers, body: bytes):
    try:
        data = load_json(status, headers, body)
    except AttemptError as exc:  # HTML from a proxy, or garbage: the status still decides
        return from_status(status, str(exc).split(": ", 1)[-1],
                           retry_after_s=header_retry_after(headers))
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    raw = str(error.get("message") or f"{error.get('status', 'error')}")
    message = one_line(raw)
    retry = header_retry_after(headers)
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                retry = float(match.group(1))
        if kind.endswith("ErrorInfo") and detail.get("reason") == "API_KEY_INVALID":
            return AuthError(f"HTTP {status}: {message}", http_status=status, hint=KEY_HINT)
    # A gateway's native route (LiteLLM's) answers errors in its own words: read them too.
    return from_gateway(from_status(status, message, retry_after_s=retry, key_hint=KEY_HINT),
                        headers, raw)
