"""Request bodies as JSON bytes, with their images' base64 spliced in, never escaped.

`json.dumps` escapes a string in one C call that holds the GIL throughout: for the ~24 MB of
base64 in an 18 MB refine that is tens of milliseconds in which the engine's loop, which
times every attempt, cannot run, although the body is built in a worker thread. Base64
needs no escaping (its alphabet is A-Z a-z 0-9 + / =), so the document is dumped with a
placeholder where each image goes and the base64 is encoded beside it a piece at a time:
the GIL can change hands between pieces, and the bytes are the ones `json.dumps` makes.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field

# Input bytes per base64 call (~1 MB out): a multiple of 3, so the pieces carry no padding
# and join into exactly the whole's encoding.
PIECE = 3 * 2**18


@dataclass(frozen=True)
class Base64:
    """Bytes that go into the document as a base64 string, after `prefix` (a data URL's
    `data:image/png;base64,`)."""

    data: bytes = field(repr=False)
    prefix: str = ""


def dumps(body: object) -> bytes:
    """`json.dumps(body).encode()`, each Base64 in it written as its base64 string."""
    marker = f"nbp-base64-{uuid.uuid4().hex}"  # random: no text in the body can spell it
    found: list[Base64] = []

    def mark(value: object) -> str:
        if not isinstance(value, Base64):
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        found.append(value)  # json.dumps meets them in document order
        return marker

    around = json.dumps(body, default=mark).split(f'"{marker}"')
    if len(around) != len(found) + 1:
        raise AssertionError("a base64 placeholder was not found where it was put")
    pieces = [around[0].encode()]
    for blob, after in zip(found, around[1:]):
        pieces.append(json.dumps(blob.prefix).encode()[:-1])  # the opening quote and prefix
        view = memoryview(blob.data)
        pieces.extend(base64.b64encode(view[i:i + PIECE]) for i in range(0, len(view), PIECE))
        pieces.append(b'"' + after.encode())
    return b"".join(pieces)  # CPython copies a large join of bytes without the GIL
