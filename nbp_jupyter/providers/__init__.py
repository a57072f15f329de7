"""Wire formats: pure functions from a Request to an httpx.Request and from bytes to an image.

Each wire is a module that satisfies `Wire`; `for_wire` is the one place that picks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import PurePath
from typing import Protocol

import httpx

from ..answer_stream import Blob
from ..types import ReferenceImage, Request
from . import chat, gemini, openai, openai_edits
from .base import ParsedImage


class Wire(Protocol):
    """What the engine needs from a wire format; parse() raises typed AttemptErrors."""

    NAME: str
    KEY_HINT: str

    def build(self, request: Request, resolution: str, model: str, base_url: str,
              api_key: str, *, timeout_s: float | None = None) -> httpx.Request: ...

    def parse(self, status: int, headers: httpx.Headers, body: bytes,
              blobs: Mapping[str, Blob] | None = None) -> ParsedImage: ...


WIRES: dict[str, Wire] = {"gemini": gemini, "openai": openai, "chat": chat}


def for_wire(name: str) -> Wire:
    return WIRES[name]


def sendable(name: str, request: Request) -> Request:
    """The request as this wire can carry it. The Gemini wire takes a refine's conversation
    as it is; the others cannot hold earlier turns or their signatures, so a refine there is
    an edit of the conversation's last image (first), with this turn's references after it."""
    if name == "gemini" or not request.history:
        return request
    last = next(part for turn in reversed(request.history) for part in turn.parts
                if turn.role == "model" and part.is_image)
    image = ReferenceImage(data=last.data, mime=last.mime, name=PurePath(last.path or "").name,
                           path=last.path or "")
    return replace(request, history=(), images=(image, *request.images))


def for_request(name: str, request: Request) -> Wire:
    """The wire for this request: the images wire's edits route when it carries references."""
    return openai_edits if name == "openai" and request.images else WIRES[name]
