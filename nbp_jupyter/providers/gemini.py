"""Gemini `generateContent` for image models (FACTS.md "Gemini wire format")."""

from __future__ import annotations

import base64
import json
import re

import httpx

from ..errors import AttemptError, AuthError, BadResponse, Blocked, from_status
from ..types import Request
from .base import (SIM_HEADER, ParsedImage, header_retry_after, image_payload, load_json,
                   one_line)

NAME = "gemini"
SAFETY_REASONS = frozenset({"SAFETY", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT",
                            "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
                            "IMAGE_RECITATION"})
KEY_HINT = "set GEMINI_API_KEY (or GOOGLE_API_KEY / NBP_API_KEY) to a valid key"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def build(request: Request, resolution: str, model: str, base_url: str, api_key: str) -> httpx.Request:
    parts: list[dict] = [{"text": request.prompt}]
    for image in request.images:
        parts.append({"inlineData": {"mimeType": image.mime,
                                     "data": base64.b64encode(image.data).decode("ascii")}})
    body = {"contents": [{"role": "user", "parts": parts}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                 "imageConfig": {"aspectRatio": request.aspect,
                                                 "imageSize": resolution}}}
    return httpx.Request(
        "POST", f"{base_url}/v1beta/models/{model}:generateContent",
        headers={"x-goog-api-key": api_key, "content-type": "application/json"},
        content=json.dumps(body).encode())


def parse(status: int, headers, body: bytes, blobs=None) -> ParsedImage:
    """The image in an answer; `blobs` holds the large strings the answer stream spilled."""
    if status != 200:
        raise _error(status, headers, body)
    data = load_json(status, headers, body)
    usage = data.get("usageMetadata") or {}
    out_tokens = usage.get("candidatesTokenCount") if isinstance(usage, dict) else None
    in_tokens = usage.get("promptTokenCount") if isinstance(usage, dict) else None
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
                          tokens=out_tokens if isinstance(out_tokens, int) else None)
    if not images:
        said = f": {one_line(' '.join(texts), 120)}" if texts else ""
        billed = "yes" if out_tokens else "no"
        if reason in SAFETY_REASONS:
            raise Blocked(f"no image: finishReason {reason}{said}", http_status=200,
                          billed=billed, tokens=out_tokens)
        raise BadResponse(f"HTTP 200 without an image (finishReason {reason or 'missing'}){said}",
                          http_status=200, billed=billed, tokens=out_tokens,
                          hint="the model answered without an image; another try may work")
    image = images[0]
    return ParsedImage(
        **image_payload(image.get("data"), "inlineData", blobs),
        mime=str(image.get("mimeType") or ""),
        output_tokens=out_tokens if isinstance(out_tokens, int) else None,
        input_tokens=in_tokens if isinstance(in_tokens, int) else None,
        text=one_line(" ".join(texts)), simulated=headers.get(SIM_HEADER) == "true",
        skipped_thoughts=thoughts)


def _error(status: int, headers, body: bytes):
    try:
        data = load_json(status, headers, body)
    except AttemptError as exc:  # HTML from a proxy, or garbage: the status still decides
        return from_status(status, str(exc).split(": ", 1)[-1],
                           retry_after_s=header_retry_after(headers))
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    message = one_line(error.get("message") or f"{error.get('status', 'error')}")
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
    return from_status(status, message, retry_after_s=retry, key_hint=KEY_HINT)
