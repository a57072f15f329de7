"""Resolutions, aspect ratios and the pixel sizes the service delivers for them.

Every number here is published: docs/facts.md "Pixel sizes".
The simulator draws images at these sizes and the engine checks delivered images
against them, so both sides of the wire share one table.
"""

from __future__ import annotations

from . import facts

RESOLUTIONS: tuple[str, ...] = ("1K", "2K", "4K")
ASPECTS: tuple[str, ...] = (
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
)

# (aspect) -> {resolution: (width, height)}; docs/facts.md "Pixel sizes"
PIXELS: dict[str, dict[str, tuple[int, int]]] = {
    "1:1": {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)},
    "2:3": {"1K": (848, 1264), "2K": (1696, 2528), "4K": (3392, 5056)},
    "3:2": {"1K": (1264, 848), "2K": (2528, 1696), "4K": (5056, 3392)},
    "3:4": {"1K": (896, 1200), "2K": (1792, 2400), "4K": (3584, 4800)},
    "4:3": {"1K": (1200, 896), "2K": (2400, 1792), "4K": (4800, 3584)},
    "4:5": {"1K": (928, 1152), "2K": (1856, 2304), "4K": (3712, 4608)},
    "5:4": {"1K": (1152, 928), "2K": (2304, 1856), "4K": (4608, 3712)},
    "9:16": {"1K": (768, 1376), "2K": (1536, 2752), "4K": (3072, 5504)},
    "16:9": {"1K": (1376, 768), "2K": (2752, 1536), "4K": (5504, 3072)},
    "21:9": {"1K": (1584, 672), "2K": (3168, 1344), "4K": (6336, 2688)},
}

# Image output tokens of gemini-3-pro-image per size; docs/facts.md "Prices and tokens".
OUTPUT_TOKENS: dict[str, int] = facts.OUTPUT_TOKENS


def rank(resolution: str) -> int:
    """0 for 1K, 1 for 2K, 2 for 4K: lets callers compare sizes."""
    return RESOLUTIONS.index(resolution)


def normalize_resolution(value: str) -> str:
    """'4k' -> '4K'; raises ValueError with the accepted values otherwise."""
    text = str(value).strip().upper()
    if text not in RESOLUTIONS:
        raise ValueError(f"unknown size {value!r}: use one of {', '.join(RESOLUTIONS)}")
    return text


def normalize_aspect(value: str) -> str:
    """'16x9' or ' 16:9 ' -> '16:9'; raises ValueError listing the supported ratios."""
    text = str(value).strip().replace("x", ":").replace("/", ":")
    if text not in PIXELS:
        raise ValueError(f"unsupported aspect {value!r}: use one of {', '.join(ASPECTS)}")
    return text


def pixels(resolution: str, aspect: str) -> tuple[int, int]:
    return PIXELS[aspect][resolution]


def classify(width: int, height: int) -> tuple[str, str] | None:
    """(resolution, aspect) of an exact table size, or None for any other size."""
    for aspect, row in PIXELS.items():
        for resolution, size in row.items():
            if size == (width, height):
                return resolution, aspect
    return None


def resolution_of(width: int, height: int) -> str:
    """The tier an image of this size belongs to, by its long side when not exact."""
    exact = classify(width, height)
    if exact:
        return exact[0]
    long_side = max(width, height)
    if long_side >= 3000:
        return "4K"
    if long_side >= 1800:
        return "2K"
    return "1K"


def aspect_of(width: int, height: int) -> str:
    """The table aspect ratio closest to width:height."""
    ratio = width / height
    return min(PIXELS, key=lambda a: abs(_ratio(a) - ratio))


def _ratio(aspect: str) -> float:
    w, h = aspect.split(":")
    return int(w) / int(h)
