"""How many MB of pixels Pillow allocated inside a block: proof that an image was or was not
decoded at full size (tracemalloc does not see Pillow's own allocator)."""

from __future__ import annotations

from contextlib import contextmanager

from PIL import Image


@contextmanager
def pixel_megabytes():
    """Yields a function giving the MB of pixel memory Pillow allocated since entry."""
    core = Image.core
    before = core.get_block_size()
    core.set_block_size(1 << 20)  # count in MB blocks
    core.reset_stats()
    try:
        yield lambda: core.get_stats()["allocated_blocks"]
    finally:
        core.set_block_size(before)
