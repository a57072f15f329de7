"""Earlier turns of a conversation on the Gemini wire, both ways (docs/facts.md
"Conversations"): turns into `contents`, and an answer's parts into turn parts."""

from __future__ import annotations

from ..turns import Part, Turn
from .json_body import Base64


def contents(history: tuple[Turn, ...]) -> list[dict]:
    """The earlier turns as `contents` entries: model parts exactly as received, each
    signature on its own part; images from the bytes read when the request was built, as
    Base64 for json_body.dumps to write."""
    return [{"role": turn.role, "parts": [_part(p) for p in turn.parts]} for turn in history]


def _part(part: Part) -> dict:
    if part.is_image:
        found: dict = {"inlineData": {"mimeType": part.mime, "data": Base64(part.data)}}
    else:
        found = {"text": part.text}
    if part.signature is not None:
        found["thoughtSignature"] = part.signature
    return found


def answer_parts(parts: list) -> tuple[Part, ...]:
    """The answer's non-thought parts with their signatures, images without their data
    (the image goes to a file; the store puts its path here)."""
    kept = []
    for part in parts:
        if not isinstance(part, dict) or part.get("thought"):
            continue  # a draft of the model's thinking: not sent back
        signature = part.get("thoughtSignature", part.get("thought_signature"))
        signature = signature if isinstance(signature, str) else None
        inline = part.get("inlineData")
        if isinstance(inline, dict):
            kept.append(Part(mime=str(inline.get("mimeType") or ""), signature=signature))
        elif isinstance(part.get("text"), str):
            kept.append(Part(text=part["text"], signature=signature))
    return tuple(kept)
