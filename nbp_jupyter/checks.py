"""Answers are checked, not trusted: parse the body, decode the image, compare it with the ask.

Pure functions on bytes (no sockets); the engine runs them in a worker thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from . import pricing, sizes
from .errors import BadResponse
from .types import Request


@dataclass
class Delivered:
    """An image that passed the checks, with what it cost and what was odd about it."""

    data: bytes
    width: int
    height: int
    fmt: str
    resolution: str
    cost: float
    simulated: bool
    silent: bool
    detail: str


def decode(wire, status: int, headers, body: bytes, request: Request, asked: str,
           model: str):
    """Parse and check in one thread hop; a gateway's URL answer comes back to be fetched."""
    parsed = wire.parse(status, headers, body)
    if parsed.url:
        return parsed
    return check(parsed, request, asked, model)


def check(parsed, request: Request, asked: str, model: str) -> Delivered:
    """Decode the image and compare it with what was asked; a 200 is not trusted blindly."""
    try:
        with Image.open(io.BytesIO(parsed.data)) as image:
            image.verify()
            width, height, fmt = image.width, image.height, (image.format or "png").lower()
    except Exception as exc:  # Pillow raises many kinds for bad bytes
        raise BadResponse(f"the image does not decode ({type(exc).__name__})",
                          http_status=200, billed="unknown") from None
    resolution = sizes.resolution_of(width, height)
    if parsed.output_tokens is not None and asked == "4K" and resolution == "4K" \
            and parsed.output_tokens < sizes.OUTPUT_TOKENS["4K"]:
        resolution = "2K"  # 4K pixels billed as 2K tokens: upscaled, not a 4K generation
    silent = sizes.rank(resolution) < sizes.rank(asked)
    notes = [f"{width}x{height}"]
    if silent:
        notes.append(f"asked {asked}, the service delivered {resolution}")
    elif (width, height) != sizes.pixels(asked, request.aspect):
        notes.append(f"expected {sizes.pixels(asked, request.aspect)} for {request.aspect}")
    if parsed.skipped_thoughts:
        notes.append(f"skipped {parsed.skipped_thoughts} draft image(s)")
    cost = pricing.cost(model, resolution, parsed.output_tokens, parsed.input_tokens)
    return Delivered(parsed.data, width, height, "jpg" if fmt == "jpeg" else fmt, resolution,
                      cost, parsed.simulated, silent, "; ".join(notes))

