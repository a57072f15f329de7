"""Wire formats: pure functions from a Request to an httpx.Request and from bytes to an image.

Each wire is a module that satisfies `Wire`; `for_wire` is the one place that picks it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import httpx

from ..answer_stream import Blob
from ..types import Request
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


def for_request(name: str, request: Request) -> Wire:
    """The wire for this request: the images wire's edits route when it carries references."""
    return openai_edits if name == "openai" and request.images else WIRES[name]
