"""The Python API: submit, generate, agenerate, history. Input is checked here, up front."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from . import config, sizes
from .facts import MAX_INLINE_REQUEST_BYTES, MAX_REFERENCES
from .errors import ConfigError
from .events import Finished
from .records import History, load_history
from .jobs import Job, session
from .policy import HEDGE_AFTER, RetryPolicy, build_ladder, other_providers
from .types import GenerationResult, ReferenceImage, Request



def prepare(prompt: str, *, size: str = "1K", aspect: str = "1:1", model: str | None = None,
            provider: str | None = None, base_url: str | None = None,
            api_key: str | None = None, images: Iterable[str | Path] = (),
            timeout: float | None = None, retries: int | None = None,
            fallback: bool | str | list[str] | tuple[str, ...] = True,
            deadline: float | None = None, time_scale: float | None = None,
            hedge: bool | float = False, policy: RetryPolicy | None = None, **settings_kw) -> tuple[Request, config.Settings, RetryPolicy]:
    """Validate everything and build (request, settings, policy); raises ConfigError."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("the prompt is empty", hint="write what the image should show")
    try:
        size = sizes.normalize_resolution(size)
        aspect = sizes.normalize_aspect(aspect)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    if not (isinstance(hedge, (bool, int, float)) and hedge >= 0):
        raise ConfigError(f"hedge must be True, False or seconds > 0, got {hedge!r}")
    if retries is not None and not (isinstance(retries, int) and retries >= 0):
        raise ConfigError(f"retries must be a whole number >= 0, got {retries!r}")
    settings = config.resolve(provider=provider, base_url=base_url, model=model,
                              api_key=api_key, time_scale=time_scale, **settings_kw)
    refs = tuple(_reference(p) for p in images)
    if len(refs) > MAX_REFERENCES:
        raise ConfigError(f"{len(refs)} reference images; the service takes at most "
                          f"{MAX_REFERENCES}")
    if sum(len(r.data) for r in refs) * 4 // 3 > MAX_INLINE_REQUEST_BYTES:  # base64 adds a third; docs/facts.md "Request limits"
        raise ConfigError("the reference images are over the service's 20 MB request cap",
                          hint="send fewer or smaller images")
    if policy is None:
        try:
            ladder = build_ladder(size, fallback)
        except ValueError as exc:
            raise ConfigError(str(exc), hint="e.g. fallback='2K,1K' or fallback=False") from None
        kw: dict = {"ladder": ladder, "deadline": deadline}
        if hedge is True:
            kw["hedge_after"] = dict(HEDGE_AFTER)
        elif hedge:  # seconds: the same for every size, kept as given
            kw["hedge_after"] = {r: float(hedge) for r in sizes.RESOLUTIONS}
            kw["learn_hedge"] = False
        if retries is not None:
            kw["attempts"] = {r: retries + 1 for r in sizes.RESOLUTIONS}
        if timeout is not None:  # the user's number is kept as given, never tightened
            kw["timeouts"] = {r: float(timeout) for r in sizes.RESOLUTIONS}
            kw["learn_timeouts"] = False
        policy = RetryPolicy(**kw)
    settings = replace(settings, alternates=tuple(
        config.resolve_alternate(name, settings)
        for name in other_providers(policy.ladder, settings.provider)))
    if refs and any(settings.for_provider(r.provider).wire == "openai" for r in policy.ladder):
        raise ConfigError("reference images need the Gemini wire format",
                          hint="use provider='gemini' (or 'sim') with images=, and no "
                               "openai: step in the fallback list")
    request = Request(prompt=prompt, size=size, aspect=aspect, model=settings.model,
                      provider=settings.provider, images=refs)
    return request, settings, policy


def _reference(path: str | Path) -> ReferenceImage:
    file = config.expand_path(path)
    if not file.is_file():
        raise ConfigError(f"reference image {str(path)!r} not found",
                          hint="give the path of a PNG, JPEG or WebP file")
    try:
        with Image.open(file) as image:
            fmt = (image.format or "").upper()
    except (UnidentifiedImageError, OSError):
        raise ConfigError(f"{str(path)!r} is not an image Pillow can read") from None
    mime = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}.get(fmt)
    if mime is None:
        raise ConfigError(f"{str(path)!r} is {fmt or 'an unknown format'}",
                          hint="convert it to PNG, JPEG or WebP")
    return ReferenceImage(data=file.read_bytes(), mime=mime, name=file.name)


def submit(prompt: str, **options) -> Job:
    """Start a generation in the background and return its Job at once."""
    listener = options.pop("listener", None)
    request, settings, policy = prepare(prompt, **options)
    return session().submit(request, settings, policy, listener)


def generate(prompt: str, **options) -> GenerationResult:
    """Generate and wait. Ctrl-C (Interrupt kernel) cancels the job and re-raises."""
    job = submit(prompt, **options)
    try:
        return job.result()
    except KeyboardInterrupt:
        job.cancel()
        raise


async def agenerate(prompt: str, **options) -> GenerationResult:
    """The async twin of generate(); awaits without blocking the caller's loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def finished(job: Job, event) -> None:
        if isinstance(event, Finished):
            loop.call_soon_threadsafe(_settle, future, event)

    job = submit(prompt, **options)
    job.add_listener(finished)
    try:
        return await future
    except asyncio.CancelledError:
        job.cancel()
        raise


def _settle(future: asyncio.Future, event: Finished) -> None:
    if not future.done():
        future.set_result(event.result)


def history(*, limit: int | None = None, all_sessions: bool = True,
            home: str | Path | None = None) -> History:
    """Jobs from the ledger, newest first; `.to_pandas()` when pandas is installed."""
    settings = config.resolve(provider="sim", home=home)
    store = session().store(settings)
    return load_history(store, limit=limit, session=None if all_sessions else store.session)
