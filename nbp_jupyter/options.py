"""Every option a user can give, and the one place where their sources are merged.

Precedence, highest first: what this call or cell says > `%config Nbp.*` (or a panel's own
boxes) > NBP_* environment variables > built-in defaults. Magics, the panel and the Python API
all build an `Options` for what they were told, lay it over the configured one with
`over()`, and hand it to `api.prepare_options`, which applies the environment (through
`config.resolve`) and the defaults. Nothing else re-implements this order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

Fallback = bool | str | list[str] | tuple[str, ...]

# The names `config.resolve` takes: where the environment fills in what is left unset.
SETTINGS_FIELDS = ("provider", "base_url", "model", "api_key", "time_scale", "home",
                   "allow_insecure_http", "max_concurrency", "sim_profile", "max_response_mb")


@dataclass(frozen=True, kw_only=True)
class Options:
    """What one source says; None means "this source does not say"."""

    size: str | None = None
    aspect: str | None = None
    model: str | None = None
    provider: str | None = None
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    images: tuple[str | Path, ...] = ()
    search: bool | None = None  # Grounding with Google Search (Gemini wire only)
    timeout: float | None = None
    retries: int | None = None
    fallback: Fallback | None = None
    deadline: float | None = None
    hedge: bool | float | None = None
    time_scale: float | None = None
    home: str | Path | None = None
    allow_insecure_http: bool | None = None
    max_concurrency: int | None = None
    sim_profile: str | None = None
    max_response_mb: float | None = None
    # True when `fallback` is a configured default rather than said for this request: a
    # default list is fitted to the request's size (see policy.trim_ladder).
    fallback_is_default: bool = False

    def over(self, defaults: Options) -> Options:
        """These options, with anything they leave unset taken from `defaults`."""
        merged: dict[str, Any] = {}
        for f in fields(self):
            mine = getattr(self, f.name)
            unset = mine is None or (f.name == "images" and not mine)
            merged[f.name] = getattr(defaults, f.name) if unset else mine
        # a list this source did not say came from the defaults: fit it to the size
        merged["fallback_is_default"] = self.fallback is None and defaults.fallback is not None
        return Options(**merged)

    def settings_kwargs(self) -> dict[str, Any]:
        """The part `config.resolve` takes, without the unset ones (so the env can fill them)."""
        return {name: getattr(self, name) for name in SETTINGS_FIELDS
                if getattr(self, name) is not None}

    def with_(self, **changes: Any) -> Options:
        return replace(self, **changes)


def from_kwargs(values: dict[str, Any]) -> Options:
    """Options from keyword arguments, refusing names that are not options."""
    known = {f.name for f in fields(Options)}
    unknown = sorted(set(values) - known)
    if unknown:
        from .errors import ConfigError

        raise ConfigError(f"unknown option{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))}",
                          hint=f"options are {', '.join(sorted(known - {'fallback_is_default'}))}")
    if "images" in values and values["images"] is not None:
        images = values["images"]
        values = {**values, "images": (images,) if isinstance(images, (str, Path))
                  else tuple(images)}
    return Options(**values)
