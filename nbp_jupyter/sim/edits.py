"""`/v1/images/edits` as OpenAI documents it (docs/facts.md "References, edits and search
grounding"): a multipart form with `image` or `image[]` files, `prompt`, `model`, `size`."""

from __future__ import annotations

from dataclasses import replace
from email.parser import BytesParser
from email.policy import HTTP

from . import wire


def parse(content_type: str, body: bytes) -> wire.SimRequest:
    """The edit request as a SimRequest (provider "openai": it answers like generations)."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise wire._invalid("Invalid Content-Type header (application/json), expected "
                            "multipart/form-data.", "content-type")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: dict[str, str] = {}
    images = 0
    for part in message.iter_parts() if message.is_multipart() else []:
        name = part.get_param("name", header="content-disposition")
        if name in ("image", "image[]") and part.get_filename() is not None:
            images += 1
        elif name:
            fields[str(name)] = part.get_content() if part.get_content_maintype() == "text" \
                else part.get_payload(decode=True).decode("utf-8", "replace")
    if not images:
        raise wire._invalid("Missing required parameter: 'image'.", "image")
    if images > 16:  # OpenAI's own cap (docs/facts.md "References, edits and search grounding")
        raise wire._invalid("Too many images: at most 16 are supported.", "image")
    body_fields = {k: fields[k] for k in ("prompt", "model", "size", "response_format", "n")
                   if k in fields}
    return replace(wire.parse_openai(body_fields), references=images)
