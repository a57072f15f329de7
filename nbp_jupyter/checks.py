"""Answers are checked, not trusted: parse the answer, read the image's header, compare it
with the ask — all before the image is decoded in full or renamed into place.

Plain functions, no sockets; the engine runs them in a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from . import pricing, sizes
from .answer_stream import AnswerStream
from .errors import AttemptError, BadResponse
from .types import Request

# All that the services send: docs/facts.md "Streamed answers and image checks".
FORMATS = ("PNG", "JPEG", "WEBP")
# An image may hold up to this many times the largest table size of the size asked: an
# OpenAI-style gateway may answer 1536x1024 to a 1K ask (docs/facts.md "Streamed answers and
# image checks"). A 1K ask answered with 12000x12000 (144 MP, 432 MB decoded) is refused from
# its header alone.
PIXEL_SLACK = 1.5
MAX_PIXELS = {res: max(row[res][0] * row[res][1] for row in sizes.PIXELS.values())
              for res in sizes.RESOLUTIONS}


@dataclass
class Delivered:
    """An image that passed the checks, with what it cost and what was odd about it."""

    data: bytes  # empty when the image is in `path`
    width: int
    height: int
    fmt: str
    resolution: str
    cost: float
    simulated: bool
    silent: bool
    detail: str
    path: Path | None = None  # the checked spill file, for the store to rename into place
    kept: Path | None = None  # where the store put it
    tokens: object = None  # pricing.Tokens the answer reported, for the ledger
    turn_parts: tuple = ()  # the model turn's parts (turns.Part), stored with the image
    turn: object = None  # the turns.Exchange the store wrote with it
    text: str = ""  # the model's words with the image
    grounding: object = None  # grounding.Grounding, when the answer was search-grounded


def settle(stream: AnswerStream, wire, status: int, headers, request: Request, asked: str,
           model: str, then: Callable[[Delivered], Any] | None = None,
           refused: Callable[[list[Path]], str] | None = None):
    """Finish a streamed 200 answer: parse it, check its image from disk, and hand it to
    `then` (the engine keeps it) in the same worker thread: one hand-off, not two.

    Every spill file but the delivered image's is deleted, and that one too on any error,
    so nothing half-written is left — except that an answer refused after it was paid for
    (too large, two images) hands its complete images to `refused`, which keeps them and
    says where. A gateway's URL answer comes back to be fetched."""
    keep, blobs = None, {}
    try:
        skeleton, blobs = stream.finish()
        parsed = wire.parse(status, headers, skeleton, blobs)
        if parsed.url:
            return parsed
        got = check(parsed, request, asked, model)
        result = then(got) if then is not None else got
        keep = got.path  # renamed into place by `then`, or the caller's to keep
        return result
    except AttemptError as exc:
        whole = [blob.path for blob in blobs.values() if blob.error is None and blob.size]
        if exc.billed == "yes" and refused is not None and whole:
            try:
                exc.args = (f"{exc.args[0]}; kept in {refused(whole)}",)  # paid for: not lost
            except OSError:  # a full disk: the refusal still stands, as one line
                pass
        raise
    finally:
        stream.discard(keep)


def check(parsed, request: Request, asked: str, model: str) -> Delivered:
    """Read the image's header, compare it with what was asked, then verify its structure;
    a 200 is not trusted blindly, and a far too large image is never decoded."""
    source = parsed.blob.path if parsed.blob is not None else io.BytesIO(parsed.data)
    png = _png_size(source)
    if png is not None:  # before Pillow, which warns about (or refuses) a bomb as it opens it
        check_pixels(*png, asked, parsed.output_tokens)
    try:
        with Image.open(source, formats=FORMATS) as image:
            width, height, fmt = image.width, image.height, (image.format or "png").lower()
            check_pixels(width, height, asked, parsed.output_tokens)
            image.verify()  # chunk structure and checksums; no pixels are decoded
    except Image.DecompressionBombError:
        raise _too_large(f"asked {asked}; the image is far larger (Pillow would not open it)",
                         parsed.output_tokens) from None
    except BadResponse:
        raise
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
    cost = pricing.cost(model, resolution, parsed.tokens, parsed.gateway_cost)
    if parsed.grounding is not None and parsed.gateway_cost is None:  # search is billed apart
        cost = round(cost + parsed.grounding.cost(), 6)
        notes.append(f"{parsed.grounding.billed_queries} search queries")
    return Delivered(parsed.data, width, height, "jpg" if fmt == "jpeg" else fmt, resolution,
                     cost, parsed.simulated, silent, "; ".join(notes),
                     parsed.blob.path if parsed.blob is not None else None, tokens=parsed.tokens,
                     turn_parts=parsed.turn_parts, text=parsed.text,
                     grounding=parsed.grounding)


def check_pixels(width: int, height: int, asked: str, tokens: int | None) -> None:
    """Refuse, from the header, an image of a larger size than asked."""
    limit = MAX_PIXELS[asked] * PIXEL_SLACK
    tier = sizes.resolution_of(width, height)
    if width * height > limit or sizes.rank(tier) > sizes.rank(asked):
        raise _too_large(f"asked {asked}; the answer is a {width}x{height} image "
                         f"({width * height / 1e6:.1f} MP, at most {limit / 1e6:.1f} MP expected)",
                         tokens)


def extension(path: Path) -> str:
    """The file name extension for an image file, from its first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(12)
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return "bin"


def _png_size(source) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk (its first, at a fixed place); None if the
    bytes are not a PNG's."""
    if isinstance(source, io.BytesIO):
        head = source.getbuffer()[:24].tobytes()
    else:
        with open(source, "rb") as fh:
            head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _too_large(message: str, tokens: int | None) -> BadResponse:
    # Billed as the answer says: with its token count, the service charged for it.
    return BadResponse(f"{message}; refused without decoding it", http_status=200,
                       billed="yes" if tokens else "unknown", tokens=pricing.as_tokens(tokens),
                       hint="the service or gateway answered another size than asked")
