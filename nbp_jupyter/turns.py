"""The turns of a conversation as values: what the ledger keeps and a request carries.

A conversation is a chain of jobs: each job is one exchange, the user's turn (prompt and
reference image files) and the model's turn (its parts as received, minus the thought
drafts, each part's `thoughtSignature` kept, the image as a file path, never base64). The
rules these follow are in docs/facts.md "Conversations".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Part:
    """One part of a turn: text, or an image kept as a file (`data` is filled only when a
    request is built, from the file)."""

    text: str | None = None
    path: str | None = None
    mime: str = ""
    signature: str | None = None  # the thoughtSignature exactly as received
    data: bytes = field(default=b"", repr=False)

    @property
    def is_image(self) -> bool:
        return self.text is None

    def as_json(self) -> dict:
        """The stored form: no bytes, only where they are."""
        found = {"text": self.text} if self.text is not None else {"path": self.path,
                                                                     "mime": self.mime}
        if self.signature is not None:
            found["signature"] = self.signature
        return found

    @classmethod
    def from_json(cls, value: dict) -> Part:
        return cls(text=value.get("text"), path=value.get("path"), mime=value.get("mime", ""),
                   signature=value.get("signature"))


@dataclass(frozen=True)
class Turn:
    """One content of a request: role "user" or "model", and its parts in order."""

    role: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Exchange:
    """One job of a conversation, as the ledger's turns table keeps it.

    `number` counts from 1 at the conversation's first job; `parent` is the job this one
    refined (None for the first). `model_parts` are the answer's non-thought parts; the
    image part's path is the job's image file."""

    job_id: str
    parent: str | None
    number: int
    prompt: str
    references: tuple[Part, ...]
    model_parts: tuple[Part, ...]
    provider: str = ""
    created: float = 0.0

    @property
    def image_path(self) -> str | None:
        return next((p.path for p in self.model_parts if p.is_image), None)

    @property
    def text(self) -> str:
        """The model's words in this turn (its text parts, joined)."""
        return " ".join(p.text for p in self.model_parts if p.text).strip()

    def turns(self) -> tuple[Turn, Turn]:
        user = (Part(text=self.prompt),) + self.references
        return Turn("user", user), Turn("model", self.model_parts)

    def as_row(self) -> dict:
        return {"job_id": self.job_id, "parent_id": self.parent, "number": self.number,
                "prompt": self.prompt, "provider": self.provider, "created": self.created,
                "refs": json.dumps([p.as_json() for p in self.references]),
                "parts": json.dumps([p.as_json() for p in self.model_parts])}

    @classmethod
    def from_row(cls, row: dict) -> Exchange:
        def parts(text: str | None) -> tuple[Part, ...]:
            return tuple(Part.from_json(p) for p in json.loads(text or "[]"))
        return cls(job_id=row["job_id"], parent=row["parent_id"], number=row["number"],
                   prompt=row["prompt"], references=parts(row["refs"]),
                   model_parts=parts(row["parts"]), provider=row["provider"] or "",
                   created=row["created"] or 0.0)


def answered(parts: tuple[Part, ...], image_path: str, mime: str) -> tuple[Part, ...]:
    """The model's parts with the delivered image's file in its image part. A wire that
    hands no parts (the OpenAI-style ones) gets one image part without a signature."""
    if not any(p.is_image for p in parts):
        parts = parts + (Part(mime=mime),)
    return tuple(replace(p, path=image_path, mime=p.mime or mime) if p.is_image else p
                 for p in parts)


def exchange(job_id: str, request, parts: tuple[Part, ...], image_path: str, mime: str,
             provider: str) -> Exchange:
    """The turn a delivered job adds to its conversation (`request` is a types.Request)."""
    references = tuple(Part(path=r.path, mime=r.mime) for r in request.images)
    return Exchange(job_id=job_id, parent=request.parent, number=request.turn,
                    prompt=request.prompt, references=references,
                    model_parts=answered(tuple(parts), image_path, mime), provider=provider,
                    created=time.time())
