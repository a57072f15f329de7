"""OpenAI-compatible `/v1/images/edits`: the images wire when a request carries reference
images (docs/facts.md "References, edits and search grounding").

Multipart: one `image[]` file part per reference, then `prompt`, `model` and `size`. The
answer has the shape of `/v1/images/generations`, so `openai.parse` reads it; only a gateway
that has no edits route (or will not edit with this model) is told apart, in one line that
names the provider that can.
"""

from __future__ import annotations

import httpx

from .. import sizes
from ..errors import AttemptError, BadRequest
from ..types import Request
from . import openai
from .base import load_json, one_line

NAME = "openai"
KEY_HINT = openai.KEY_HINT
PATH = "/v1/images/edits"
CAN_EDIT = "provider='gemini' sends reference images itself (inlineData)"
# Words a gateway's 400 uses when it has the route but will not edit with this model.
_REFUSALS = ("not support", "unsupported", "does not have", "no such", "not found",
             "invalid value for 'model'", "invalid model")


def build(request: Request, resolution: str, model: str, base_url: str, api_key: str, *,
          timeout_s: float | None = None) -> httpx.Request:
    width, height = sizes.pixels(resolution, request.aspect)
    files = [("image[]", (image.name, image.data, image.mime)) for image in request.images]
    data = {"prompt": request.prompt, "model": model, "size": f"{width}x{height}"}
    return httpx.Request("POST", f"{base_url}{PATH}",
                         headers={"authorization": f"Bearer {api_key}"}, data=data, files=files)


def parse(status: int, headers, body: bytes, blobs=None):
    if status in (404, 405) or (status in (400, 422) and _refuses(status, headers, body)):
        error = openai.parse(status, headers, body, blobs) if status != 404 else None
        said = str(error).split(": ", 1)[-1] if isinstance(error, AttemptError) else ""
        raise BadRequest(f"HTTP {status}: this gateway does not edit images with reference "
                         f"images ({PATH}{': ' + one_line(said, 100) if said else ''})",
                         http_status=status, hint=CAN_EDIT)
    return openai.parse(status, headers, body, blobs)


def _refuses(status: int, headers, body: bytes) -> bool:
    try:
        data = load_json(status, headers, body)
    except AttemptError:
        return False
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    text = str(error.get("message") or data.get("detail") or "").lower()
    return any(word in text for word in _REFUSALS)
