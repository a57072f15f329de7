"""How times and long text read everywhere: one formatter each, so a caption, a status
line and a history row never disagree by a second."""

from __future__ import annotations


def clock(seconds: float | None) -> str:
    """m:ss (h:mm:ss past an hour), rounded down like a stopwatch: 59.9 s is 0:59."""
    total = max(0, int(seconds or 0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def short(text: str, limit: int) -> str:
    """One line of at most `limit` characters: whitespace folded, an ellipsis if cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
