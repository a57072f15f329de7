"""What a provider turns a response into, and helpers both wire formats share."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..answer_stream import Blob
from ..errors import BadResponse, ServerError

SIM_HEADER = "x-nbp-simulated"


@dataclass(frozen=True)
class ParsedImage:
    """An image found in a 200 answer, before it is decoded and checked."""

    data: bytes = field(repr=False)
    mime: str = "image/png"
    output_tokens: int | None = None
    input_tokens: int | None = None
    text: str = ""
    simulated: bool = False
    url: str | None = None  # gateways that answer with a link instead of bytes
    skipped_thoughts: int = 0
    blob: Blob | None = None  # the image already decoded into a file by the answer stream


def load_json(status: int, headers, body: bytes) -> dict:
    """The JSON object in a body, or a typed error saying what came instead."""
    content_type = headers.get("content-type", "")
    if content_type.startswith("text/html") or body.lstrip()[:1] == b"<":
        error = BadResponse if status == 200 else ServerError
        raise error(f"HTTP {status}: a proxy answered with an HTML page instead of JSON",
                    http_status=status, billed="unknown" if status == 200 else "no",
                    hint="a proxy or load balancer between you and the service failed")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadResponse(f"HTTP {status}: body is not valid JSON ({len(body)} bytes, "
                          f"{exc.msg if hasattr(exc, 'msg') else 'undecodable'})",
                          http_status=status, billed="unknown" if status == 200 else "no",
                          hint="the answer was cut short or mangled on the way") from None
    if not isinstance(data, dict):
        raise BadResponse(f"HTTP {status}: JSON body is a {type(data).__name__}, not an object",
                          http_status=status, billed="unknown" if status == 200 else "no")
    return data


def b64decode(text: object, where: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise BadResponse(f"{where} holds no base64 data", http_status=200, billed="unknown")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadResponse(f"{where} is not valid base64", http_status=200,
                          billed="unknown") from exc


def image_payload(value: object, where: str, blobs: Mapping[str, Blob] | None) -> dict:
    """ParsedImage's `data` or `blob` for an image's base64 value or `data:...;base64,` URL.

    A large string was decoded to a file while the answer streamed (answer_stream.py) and
    stands in the JSON as a marker found in `blobs`; a small one is decoded here."""
    blob = blobs.get(value) if blobs and isinstance(value, str) else None
    if blob is None:
        if isinstance(value, str) and value.startswith("data:"):  # a chat wire's image URL
            head, _, value = value.partition(",")
            if not head.endswith(";base64"):
                raise BadResponse(f"{where} is a data: URL without base64", http_status=200,
                                  billed="unknown")
        return {"data": b64decode(value, where)}
    if blob.error or not blob.size:
        raise BadResponse(f"{where} is not valid base64 ({blob.error or 'empty'})",
                          http_status=200, billed="unknown")
    return {"data": b"", "blob": blob}


def header_retry_after(headers) -> float | None:
    """Seconds from retry-after-ms or Retry-After (seconds form), if the server sent one."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None  # an HTTP date: rare for these APIs, ignored
    return None


def one_line(text: object, limit: int = 200) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
