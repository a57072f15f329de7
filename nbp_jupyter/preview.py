"""Small previews of full-size images, so notebooks stay light (the file on disk is full size).

Pillow work: call from a worker thread, never from the engine's loop.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

PREVIEW_LONG_SIDE = 1024  # a dozen 4K results stay a few MB in the .ipynb


def preview_jpeg(path: Path, long_side: int = PREVIEW_LONG_SIDE) -> bytes:
    """JPEG bytes of the image scaled so its long side is at most `long_side`."""
    return preview(path, long_side)[0]


def preview(path: Path, long_side: int = PREVIEW_LONG_SIDE) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height) of the image scaled so its long side is at most `long_side`."""
    with Image.open(path) as image:
        # A JPEG decodes at 1/2, 1/4 or 1/8 scale straight away (docs/facts.md "Streamed
        # answers and image checks"): a 4K JPEG never becomes 50 MB of pixels for a preview.
        image.draft("RGB", (long_side, long_side))
        image.thumbnail((long_side, long_side))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=85)
        width, height = image.size
    return out.getvalue(), width, height
