"""Small previews of full-size images, so notebooks stay light (the file on disk is full size)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

PREVIEW_LONG_SIDE = 1024  # a dozen 4K results stay a few MB in the .ipynb


def preview_jpeg(path: Path, long_side: int = PREVIEW_LONG_SIDE) -> bytes:
    """JPEG bytes of the image scaled so its long side is at most `long_side`."""
    with Image.open(path) as image:
        image.thumbnail((long_side, long_side))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=85)
    return out.getvalue()
