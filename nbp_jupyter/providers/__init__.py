"""Wire formats: pure functions from a Request to an httpx.Request and from bytes to an image."""

from __future__ import annotations

from types import ModuleType

from . import gemini, openai


def for_wire(name: str) -> ModuleType:
    return {"gemini": gemini, "openai": openai}[name]
