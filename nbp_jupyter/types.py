"""The values that flow through nbp_jupyter: what was asked, each attempt, what came back.

Times (`elapsed_s`, `waited_s`) are in service seconds: real seconds divided by the
time scale, so a simulated 4K call reads like a real one whatever the scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .grounding import Grounding
from .states import Billed, Outcome
from .timefmt import clock
from .turns import Turn


@dataclass(frozen=True)
class ReferenceImage:
    """An input image sent with the prompt (Gemini inlineData)."""

    data: bytes = field(repr=False)
    mime: str
    name: str
    path: str = ""  # where it was read from: a later turn of the conversation reads it again


@dataclass(frozen=True, kw_only=True)
class Request:
    """One generation request, validated. The key is not part of it."""

    prompt: str
    size: str = "1K"
    aspect: str = "1:1"
    model: str = ""
    provider: str = "sim"
    images: tuple[ReferenceImage, ...] = ()
    # A refine: the conversation so far (images read from their files), the job refined,
    # and this job's turn number in the conversation (turns.py).
    history: tuple[Turn, ...] = field(default=(), repr=False)
    parent: str | None = None
    turn: int = 1
    search: bool = False  # Grounding with Google Search (grounding.py)


@dataclass(frozen=True, kw_only=True)
class Attempt:
    number: int
    resolution: str
    model: str
    provider: str
    outcome: Outcome
    http_status: int | None
    waited_s: float
    elapsed_s: float
    billed: Billed
    cost_usd: float
    detail: str
    width: int | None = None
    height: int | None = None
    # What the answer said it used, split as billed (docs/facts.md "Per-modality cost");
    # None where the service did not say.
    input_text_tokens: int | None = None
    input_image_tokens: int | None = None
    output_image_tokens: int | None = None
    output_text_tokens: int | None = None
    thought_tokens: int | None = None
    search_queries: int | None = None  # billed Google Search queries, priced into cost_usd


@dataclass(frozen=True, kw_only=True)
class GenerationResult:
    success: bool
    requested: str
    resolution: str | None  # what was delivered
    downgraded: bool  # delivered below the request, by fallback or silently
    width: int | None
    height: int | None
    image_path: Path | None
    model: str
    attempts: list[Attempt]
    elapsed_s: float
    cost_usd: float
    cost_unknown_usd: float
    error: str | None
    simulated: bool
    prompt: str = ""
    job_id: str = ""
    silent_downgrade: bool = False
    turn: int = 1  # its turn in a conversation (a refine's is 2 or more)
    refines: str | None = None  # the job it refined
    text: str = ""  # what the model said with the image (untrusted: escaped when shown)
    grounding: Grounding | None = None  # the search behind a grounded image

    def caption(self) -> str:
        """One line a person can read: sizes, attempts, time, money, where the file is."""
        got = self.resolution or "nothing"
        said = [f"turn {self.turn}", f"refines {self.refines}"] if self.refines else []
        parts = said + [f"{self.requested} → {got}", f"{len(self.attempts)} attempt"
                 + ("s" if len(self.attempts) != 1 else ""),
                 # the simulator's clock runs fast: say whose minutes these are
                 clock(self.elapsed_s) + (" simulated time" if self.simulated else ""),
                 f"${self.cost_usd:.3f}"]
        if self.cost_unknown_usd:
            parts.append(f"+ up to ${self.cost_unknown_usd:.3f} unknown")
        if self.silent_downgrade:
            parts.append("silently downgraded by the service")
        if self.image_path:
            parts.append(str(self.image_path))
        if self.error:
            parts.append(self.error)
        if self.simulated:
            parts.append("SIMULATED")
        return " · ".join(parts)

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict, dict]:
        """The preview as an image/jpeg output with its width, the caption as its text."""
        from .display import result_mimebundle
        return result_mimebundle(self)
