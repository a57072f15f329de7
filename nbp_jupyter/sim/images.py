"""Simulated images: real PNGs at the exact pixel size, stamped SIMULATED.

A flat palette image encodes a 4K PNG in ~20 ms and a few KB, which keeps tests fast.
`realistic=True` fills most of the frame with cached noise so that a 4K body weighs what
a real one does (10-25 MB: docs/facts.md "Answers on the wire"), for memory and throughput
benchmarks.
"""

from __future__ import annotations

import functools
import io
import random

from PIL import Image, ImageDraw, ImageFont

REALISTIC_BYTES_PER_PIXEL = 1.0  # ~16 MB for 4096x4096, inside the 10-25 MB of real 4K PNGs


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the tiny bitmap font
        return ImageFont.load_default()


@functools.lru_cache(maxsize=4)
def _noise(width: int, height: int) -> Image.Image:
    """Incompressible rows, drawn once per size: the expensive part of a realistic body."""
    rows = min(height, int(width * height * REALISTIC_BYTES_PER_PIXEL / (width * 3)))
    data = random.Random(width * 7919 + height).randbytes(width * rows * 3)
    return Image.frombytes("RGB", (width, rows), data)


def _stamp(image: Image.Image, lines: list[str], fill: int | tuple[int, int, int]) -> None:
    width, height = image.size
    draw = ImageDraw.Draw(image)
    font = _font(max(12, min(width, height) // 14))
    y = height // 3
    for text in lines:
        draw.text((width // 20, y), text, font=font, fill=fill)
        y += int(font.size * 1.3) if hasattr(font, "size") else 14


@functools.lru_cache(maxsize=32)
def render(width: int, height: int, lines: tuple[str, ...], realistic: bool = False) -> bytes:
    """PNG bytes of a width x height image with `lines` written on it."""
    if realistic:
        image = Image.new("RGB", (width, height), (40, 60, 90))
        image.paste(_noise(width, height), (0, 0))
        _stamp(image, list(lines), (255, 255, 255))
        level = 1  # fast deflate: the flat part shrinks, the noise stays ~1 byte a pixel
    else:
        image = Image.new("P", (width, height), 0)
        image.putpalette([38, 52, 86, 250, 204, 21, 255, 255, 255] + [0] * (256 * 3 - 9))
        ImageDraw.Draw(image).rectangle(
            [0, 0, width - 1, height // 20], fill=1)  # a band so the frame is visible
        _stamp(image, list(lines), 2)
        level = 1
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=level)
    return out.getvalue()


def stamp_lines(prompt: str, resolution: str, width: int, height: int, attempt: int,
                note: str = "") -> tuple[str, ...]:
    words = " ".join(prompt.split()[:6]) or "(empty prompt)"
    # `attempt` counts this simulator's calls with this prompt and size, across jobs: named so,
    # it cannot contradict a caption's attempts of one job
    lines = ["SIMULATED", words[:48], f"{resolution} {width}x{height}",
             f"call {attempt} with this prompt"]
    if note:
        lines.append(note)
    return tuple(lines)
