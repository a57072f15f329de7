"""Reference images: read, checked and made sendable before anything goes on the wire.

The rules (counts, types, sizes) are in docs/facts.md "References, edits and search
grounding". Runs in the caller's thread (Pillow and file reads), never on the engine's loop.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from . import config
from .errors import ConfigError
from .facts import (MAX_CHARACTER_REFERENCES, MAX_HIGH_FIDELITY_OBJECTS,
                    MAX_INLINE_REQUEST_BYTES, MAX_REFERENCE_BYTES, MAX_REFERENCE_SIDE,
                    MAX_REFERENCES)
from .types import ReferenceImage

# Pillow's format name (read from the bytes) -> the MIME type the services take.
MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
FIDELITY = (f"Gemini 3 Pro Image keeps high fidelity for up to {MAX_HIGH_FIDELITY_OBJECTS} "
            f"object images and up to {MAX_CHARACTER_REFERENCES} character (people) images")
JPEG_QUALITY = 90
# Our rule (docs/facts.md "References, edits and search grounding"): a file this large is
# the wrong file (a video, a disk image), refused from its size before a byte is read.
MAX_REFERENCE_FILE_BYTES = 512 * 2**20


class ReferenceWarning(UserWarning):
    """More references than the model reproduces faithfully: they are sent all the same."""


def load(paths: Iterable[str | Path]) -> tuple[ReferenceImage, ...]:
    """The references for these paths, checked; raises ConfigError (one line) for too many,
    a missing or unreadable file, or a type the services do not take."""
    paths = list(paths)
    if len(paths) > MAX_REFERENCES:
        raise ConfigError(f"{len(paths)} reference images; the service takes at most "
                          f"{MAX_REFERENCES} ({FIDELITY})",
                          hint=f"pass at most {MAX_REFERENCES}, the ones that matter most")
    if len(paths) > MAX_HIGH_FIDELITY_OBJECTS:
        warnings.warn(f"{len(paths)} reference images: {FIDELITY}; beyond that the model "
                      "follows them less closely", ReferenceWarning, stacklevel=3)
    refs = tuple(read(p) for p in paths)
    if sum(len(r.data) for r in refs) * 4 // 3 > MAX_INLINE_REQUEST_BYTES:  # base64: +1/3
        raise ConfigError("the reference images are over the service's 20 MB request cap",
                          hint="send fewer or smaller images")
    return refs


def read(path: str | Path) -> ReferenceImage:
    """One reference: its type sniffed from its first bytes, downscaled if the service would
    refuse it (docs/facts.md "References, edits and search grounding"). Only a file small
    enough to send as it is gets read whole; a larger one is decoded from the disk, so a
    2 GB file passed by mistake is refused from its size, not loaded into memory."""
    file = config.expand_path(path)
    try:
        handle = open(file, "rb")
    except (OSError, ValueError) as exc:  # ValueError: a path with a NUL byte in it
        what = "not found" if isinstance(exc, FileNotFoundError) else \
            f"cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})"
        raise ConfigError(f"reference image {str(path)!r} {what}",
                          hint="give the path of a PNG, JPEG or WebP file") from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_REFERENCE_FILE_BYTES:
            raise ConfigError(f"reference image {str(path)!r} is a {size / 2**20:,.0f} MB file; "
                              f"references over {MAX_REFERENCE_FILE_BYTES // 2**20} MB are "
                              "refused unread", hint="give the path of the image you meant "
                              "(a PNG, JPEG or WebP), or save a smaller copy of it")
        try:
            data, mime = _sendable(handle, size, path)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            raise ConfigError(f"{str(path)!r} is not an image Pillow can read",
                              hint="give the path of a PNG, JPEG or WebP file") from None
    return ReferenceImage(data=data, mime=mime, name=file.name, path=str(file.resolve()))


def _sendable(handle: BinaryIO, size: int, path: str | Path) -> tuple[bytes, str]:
    """The bytes to send and their type. Pillow's open reads only the header (the type from
    its signature, the pixel size); the file is read whole only when it goes as it is."""
    with Image.open(handle) as image:
        _mime(image, path)  # a type the services refuse is refused before any decoding
        if size > MAX_REFERENCE_BYTES or max(image.size) > MAX_REFERENCE_SIDE:
            return shrink(image)  # decoded from the file: its bytes are never held at once
    handle.seek(0)
    data = handle.read(MAX_REFERENCE_BYTES + 1)  # bounded: the file may have grown
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # a truncated file fails here, not at the service
        mime = _mime(image, path)  # the type of the very bytes sent
        if len(data) > MAX_REFERENCE_BYTES or max(image.size) > MAX_REFERENCE_SIDE:
            return shrink(image)  # it changed since its header was read
    return data, mime


def _mime(image: Image.Image, path: str | Path) -> str:
    fmt = (image.format or "").upper()
    mime = MIME.get(fmt)
    if mime is None:
        raise ConfigError(f"{str(path)!r} is {fmt or 'an unknown format'}",
                          hint="convert it to PNG, JPEG or WebP")
    return mime


def shrink(image: Image.Image) -> tuple[bytes, str]:
    """The image fitted into MAX_REFERENCE_SIDE and re-encoded under MAX_REFERENCE_BYTES:
    PNG when it has transparency (JPEG would lose it), else JPEG."""
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    side = MAX_REFERENCE_SIDE
    while True:
        copy = image.copy()
        copy.thumbnail((side, side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if alpha:
            copy.convert("RGBA").save(out, "PNG", optimize=True)
        else:
            copy.convert("RGB").save(out, "JPEG", quality=JPEG_QUALITY)
        if out.tell() <= MAX_REFERENCE_BYTES or side <= 256:
            return out.getvalue(), "image/png" if alpha else "image/jpeg"
        side //= 2
