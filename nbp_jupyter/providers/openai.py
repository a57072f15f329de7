"""OpenAI-compatible `/v1/images/generations`, as gateways reselling Nano Banana Pro speak it."""

from __future__ import annotations

import json

import httpx

from .. import sizes
from ..errors import AttemptError, BadResponse, Blocked, ConfigError, from_status
from ..types import Request
from .base import SIM_HEADER, ParsedImage, header_retry_after, image_payload, load_json, one_line

NAME = "openai"
KEY_HINT = "set OPENAI_API_KEY (or NBP_API_KEY) to your gateway's key"
POLICY_CODES = frozenset({"content_policy_violation", "moderation_blocked", "safety"})


def build(request: Request, resolution: str, model: str, base_url: str, api_key: str) -> httpx.Request:
    if request.images:
        raise ConfigError("reference images are not part of /v1/images/generations",
                          hint="use provider='gemini' (or the simulator) for --image")
    width, height = sizes.pixels(resolution, request.aspect)
    body = {"model": model, "prompt": request.prompt, "size": f"{width}x{height}", "n": 1,
            "response_format": "b64_json"}
    return httpx.Request("POST", f"{base_url}/v1/images/generations",
                         headers={"authorization": f"Bearer {api_key}",
                                  "content-type": "application/json"},
                         content=json.dumps(body).encode())


def parse(status: int, headers, body: bytes, blobs=None) -> ParsedImage:
    """The image in an answer; `blobs` holds the large strings the answer stream spilled."""
    if status != 200:
        raise _error(status, headers, body)
    data = load_json(status, headers, body)
    items = data.get("data")
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise BadResponse("HTTP 200 without an image (empty data)", http_status=200,
                          billed="unknown", hint="the gateway made no image; another try may work")
    item = items[0]
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    out_tokens = usage.get("output_tokens")
    common = dict(output_tokens=out_tokens if isinstance(out_tokens, int) else None,
                  text=one_line(item.get("revised_prompt") or ""),
                  simulated=headers.get(SIM_HEADER) == "true")
    if item.get("b64_json"):
        return ParsedImage(**image_payload(item["b64_json"], "b64_json", blobs), **common)
    if isinstance(item.get("url"), str) and item["url"].startswith(("http://", "https://")):
        return ParsedImage(data=b"", url=item["url"], **common)
    raise BadResponse("HTTP 200: data[0] has neither b64_json nor url", http_status=200,
                      billed="unknown")


def _error(status: int, headers, body: bytes):
    retry = header_retry_after(headers)
    try:
        data = load_json(status, headers, body)
    except AttemptError as exc:  # HTML from a proxy, or garbage: the status still decides
        return from_status(status, str(exc).split(": ", 1)[-1], retry_after_s=retry)
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    message = one_line(error.get("message") or "error")
    if error.get("code") in POLICY_CODES:
        return Blocked(f"HTTP {status}: {message}", http_status=status)
    return from_status(status, message, retry_after_s=retry, key_hint=KEY_HINT)
