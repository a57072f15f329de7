"""What a provider turns a response into, and helpers the wire formats share."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from ..answer_stream import Blob
from ..errors import AttemptError, BadResponse, Overloaded, ServerError
from ..pricing import Tokens
from ..timefmt import short
from ..turns import Part
from . import json_body

SIM_HEADER = "x-nbp-simulated"
# LiteLLM's proxy says what it charged and how often it retried upstream (docs/facts.md
# "Gateways as they are").
GATEWAY_COST_HEADER = "x-litellm-response-cost"
GATEWAY_RETRIES_HEADER = "x-litellm-attempted-retries"
# A delay a gateway left in the message when it dropped Retry-After: Google's
# `"retryDelay": "20s"` copied into the text, or OpenAI's "Please try again in 20s".
_DELAY_IN_TEXT = re.compile(
    r"(?:retryDelay\W{0,6}|(?:retry|try again) (?:in|after) )(\d+(?:\.\d+)?) ?s", re.IGNORECASE)
# The upstream's own status inside a gateway's 500: `{"error": {"code": 503, ...`
_UPSTREAM_CODE = re.compile(r"""["']code["']\s*:\s*["']?(\d{3})""")


@dataclass(frozen=True)
class ParsedImage:
    """An image found in a 200 answer, before it is decoded and checked."""

    data: bytes = field(repr=False)
    mime: str = "image/png"
    tokens: Tokens | None = None
    text: str = ""
    simulated: bool = False
    url: str | None = None  # gateways that answer with a link instead of bytes
    skipped_thoughts: int = 0
    blob: Blob | None = None  # the image already decoded into a file by the answer stream
    gateway_cost: float | None = None  # what the gateway says it charged, in USD
    # The model turn's non-thought parts with their signatures, for the next turn of a
    # conversation (docs/facts.md "Conversations"); the wires without them leave it empty.
    turn_parts: tuple[Part, ...] = ()
    grounding: object = None  # grounding.Grounding of a search-grounded answer

    @property
    def output_tokens(self) -> int | None:
        """Image-output tokens: 1120 for 1K/2K, 2000 for a real 4K (docs/facts.md)."""
        return self.tokens.output_image if self.tokens else None


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
    """A service's text (any object) as one line: timefmt.short, the package's one shortener."""
    return short(str(text), limit)


def bearer_post(url: str, api_key: str, body: dict) -> httpx.Request:
    """A JSON POST with the key as a bearer token, as OpenAI-style gateways take it."""
    return httpx.Request("POST", url, headers={"authorization": f"Bearer {api_key}",
                                               "content-type": "application/json"},
                         content=json_body.dumps(body))


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def gateway_cost(headers) -> float | None:
    """USD the gateway says this call cost, from its response header, if it sent one."""
    try:
        value = float(headers.get(GATEWAY_COST_HEADER) or "nan")
    except ValueError:
        return None
    return value if value >= 0 else None  # NaN compares false: absent


def image_ref(value: object, where: str, blobs: Mapping[str, Blob] | None = None) -> dict:
    """ParsedImage's fields for an image given as base64, a `data:` URL (with its type) or
    an http(s) URL to fetch."""
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return {"data": b"", "url": value}
    fields = image_payload(value, where, blobs)
    if isinstance(value, str) and value.startswith("data:"):
        fields["mime"] = value[5:].split(";", 1)[0] or "image/png"
    return fields


def retry_delay_in_text(message: str) -> float | None:
    match = _DELAY_IN_TEXT.search(message)
    return float(match.group(1)) if match else None


def from_gateway(error: AttemptError, headers, message: str) -> AttemptError:
    """Read what a gateway left in its error: the delay it dropped from Retry-After, the
    upstream's 503 wrapped in its 500, and whether it already retried upstream."""
    if error.retry_after_s is None:
        error.retry_after_s = retry_delay_in_text(message)
    codes = _UPSTREAM_CODE.findall(message) if isinstance(error, ServerError) else []
    if codes and codes[-1] == "503":  # the model behind the gateway is overloaded
        error = Overloaded(str(error), http_status=error.http_status,
                           retry_after_s=error.retry_after_s,
                           hint="the model behind the gateway is overloaded")
    try:
        retried = int(headers.get(GATEWAY_RETRIES_HEADER) or 0)
    except ValueError:
        retried = 0
    if (error.http_status or 0) < 500:
        return error
    if retried > 0:
        times = "once" if retried == 1 else f"{retried} times"
        error.hint = f"the gateway already retried {times} before answering; we retry too"
        error.gateway_retried = True
    elif "LiteLLM" in message:  # its images route does not say how often it retried
        error.hint = "the gateway (LiteLLM) may already have retried upstream; we retry too"
        error.gateway_retried = True
    return error
