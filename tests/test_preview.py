"""Previews decode big JPEGs at reduced size: a 4K result's preview never holds 4K pixels."""

from __future__ import annotations

import io

from PIL import Image

from nbp_jupyter.preview import preview_jpeg

from .pillow_memory import pixel_megabytes


def test_jpeg_preview_decodes_at_reduced_size(tmp_path):
    """Previewing a 4096x4096 JPEG stays far below its 50 MB of decoded pixels."""
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4096, 4096), (90, 120, 200)).save(path, "JPEG", quality=90)
    with pixel_megabytes() as allocated:
        data = preview_jpeg(path)
        used = allocated()
    with Image.open(io.BytesIO(data)) as preview:
        assert preview.size == (1024, 1024)
    # decoded at 1/4 scale: 4 MB of pixels; thumbnail's own draft stops at 1/2 (16 MB)
    assert used < 12, used
