"""The Python API: submit, generate, agenerate, history. Input is checked here, up front."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import config, references, sizes

DEFAULT_SIZE, DEFAULT_ASPECT = "1K", "1:1"
from .conversation import Conversation, check_service, check_size
from .conversation import load as load_conversation
from .errors import ConfigError
from .events import Event, Finished
from .records import History, load_history
from .jobs import Job, session
from .options import Fallback, Options, from_kwargs
from .policy import (SAME_SIZE_HEDGE_AFTER, RetryPolicy, build_ladder, other_providers,
                     trim_ladder)
from .turns import Exchange
from .types import GenerationResult, Request



def prepare(prompt: str, *, policy: RetryPolicy | None = None,
            **options: Any) -> tuple[Request, config.Settings, RetryPolicy]:
    """Validate everything and build (request, settings, policy); raises ConfigError.
    Keyword options are those of `submit`."""
    return prepare_options(prompt, from_kwargs(options), policy=policy)


def prepare_options(prompt: str, options: Options, *, policy: RetryPolicy | None = None,
                    conversation: Conversation | None = None,
                    ) -> tuple[Request, config.Settings, RetryPolicy]:
    """The one place where options become a request: `options` are already laid over any
    configured ones (Options.over); the environment and the defaults fill the rest. A
    refine passes the `conversation` it continues: its size and aspect are the defaults."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ConfigError("the prompt is empty", hint="write what the image should show")
    if conversation is not None:
        options = options.with_(size=options.size or conversation.size,
                                aspect=options.aspect or conversation.aspect)
    try:
        size = sizes.normalize_resolution(options.size or DEFAULT_SIZE)
        aspect = sizes.normalize_aspect(options.aspect or DEFAULT_ASPECT)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    timeout, deadline, retries = options.timeout, options.deadline, options.retries
    hedge = False if options.hedge is None else options.hedge
    for name, value in (("timeout", timeout), ("deadline", deadline)):
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise ConfigError(f"{name} must be a positive number of seconds, got {value!r}")
    if not (isinstance(hedge, (bool, int, float)) and hedge >= 0):
        raise ConfigError(f"hedge must be True, False or seconds > 0, got {hedge!r}")
    if retries is not None and not (isinstance(retries, int) and retries >= 0):
        raise ConfigError(f"retries must be a whole number >= 0, got {retries!r}")
    settings = config.resolve(**options.settings_kwargs())
    refs = references.load(options.images)
    if policy is None:
        policy = _policy(size, options, hedge)
    settings = replace(settings, alternates=tuple(
        config.resolve_alternate(name, settings)
        for name in other_providers(policy.ladder, settings.provider)))
    search = bool(options.search)
    if search and any(settings.for_provider(r.provider).wire != "gemini" for r in policy.ladder):
        raise ConfigError("Google Search grounding (search=True) needs the Gemini wire; "
                          "OpenAI-style image and chat gateways have no such tool",
                          hint="use provider='gemini' (or 'sim'), with no openai: or chat: "
                               "step in the fallback list")
    request = Request(prompt=prompt, size=size, aspect=aspect, model=settings.model,
                      provider=settings.provider, images=refs, search=search)
    if conversation is not None:
        request = _continuing(request, conversation, settings, policy)
    return request, settings, policy


def _continuing(request: Request, conversation: Conversation, settings: config.Settings,
                policy: RetryPolicy) -> Request:
    """A refine's request: the earlier turns go with it. A rung on a wire without
    conversations sends an edit of the last image instead (providers.sendable)."""
    for rung in policy.ladder:
        endpoint = settings.for_provider(rung.provider)
        if endpoint.wire == "gemini":
            check_service(conversation, endpoint.provider)
    restart = () if conversation.restart is None else (conversation.restart,)
    request = replace(request, history=conversation.history, parent=conversation.parent,
                      turn=conversation.turn, images=(*restart, *request.images))
    check_size(request)
    return request


def _policy(size: str, options: Options, hedge: bool | float) -> RetryPolicy:
    fallback = True if options.fallback is None else options.fallback
    if options.fallback_is_default and isinstance(fallback, str):
        fallback = trim_ladder(size, fallback)  # a configured list, fitted to this size
    try:
        ladder = build_ladder(size, fallback)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="e.g. fallback='2K,1K' or fallback=False") from None
    kw: dict = {"ladder": ladder, "deadline": options.deadline}
    if hedge is True:  # the same size while healthy, at P95 x pace (policy.py)
        kw["hedge_after"] = dict(SAME_SIZE_HEDGE_AFTER)
        kw["hedge_same_size"] = True
    elif hedge:  # seconds: the next size down, the same point for every size, kept as given
        kw["hedge_after"] = {r: float(hedge) for r in sizes.RESOLUTIONS}
        kw["learn_hedge"] = False
    if options.retries is not None:
        kw["attempts"] = {r: options.retries + 1 for r in sizes.RESOLUTIONS}
        kw["quick_extra_tries"] = 0  # the user's count is kept as given
    if options.timeout is not None:  # the user's number is kept as given, never tightened
        kw["timeouts"] = {r: float(options.timeout) for r in sizes.RESOLUTIONS}
        kw["learn_timeouts"] = False
        kw["timeout_margin"] = None
    return RetryPolicy(**kw)


def fallback_providers(options: Options) -> list[str]:
    """The providers other than the main one that these options' fallback list steps to
    (for %nbp_config); raises ConfigError for a list that cannot be read."""
    size = sizes.normalize_resolution(options.size or DEFAULT_SIZE)
    settings = config.resolve(**options.settings_kwargs())
    return other_providers(_policy(size, options, False).ladder, settings.provider)


_OPTION_DOCS = """
    Args:
        prompt: what the image should show; taken literally.
        size: "1K", "2K" or "4K" (default "1K").
        aspect: "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9" or "21:9".
        model: the model name (default NBP_MODEL, else the provider's Nano Banana Pro).
        provider: "gemini", "openai", "chat", "openrouter" or "sim" (default: by which key
            is set; "sim" with none).
        base_url: the endpoint, e.g. your gateway (default NBP_BASE_URL, else the public one).
        api_key: a key for this call (default: from the environment; never stored or shown).
        images: reference image paths, at most 14 (OpenAI-style gateways: /v1/images/edits).
        search: ground the image in Google Search results (Gemini wire; each query the
            model runs is billed, and its sources are shown with the image).
        timeout: seconds per attempt (default by size; see RetryPolicy).
        retries: extra tries at each size.
        fallback: True (every smaller size), False, or a list such as "2K,1K",
            "2K, gemini-2.5-flash-image@1K" or "openai:4K, 2K".
        deadline: seconds for the whole job; no attempt starts whose median does not fit.
        hedge: True to start a second call beside one still out at its size's published
            P95 (times the session's pace): the same size while it is healthy, the next
            size down while it is failing for every job; or seconds, to start the next
            size down after that long.
        time_scale: multiply every wait and timeout (the simulator's clock).
        home: where images and the ledger live (default NBP_HOME, else ./nbp-output).
        allow_insecure_http: allow a key over plain http to a non-loopback host.
        max_concurrency: requests in flight at once in this session.
        sim_profile: the built-in simulator's profile when provider is "sim".
        max_response_mb: refuse an answer larger than this while it streams.
        policy: a RetryPolicy for full control (overrides timeout, retries, fallback, hedge).
"""


def submit(prompt: str, *, size: str | None = None, aspect: str | None = None,
           model: str | None = None, provider: str | None = None, base_url: str | None = None,
           api_key: str | None = None, images: Iterable[str | Path] = (),
           search: bool | None = None, timeout: float | None = None, retries: int | None = None,
           fallback: Fallback | None = None, deadline: float | None = None,
           hedge: bool | float | None = None, time_scale: float | None = None,
           home: str | Path | None = None, allow_insecure_http: bool | None = None,
           max_concurrency: int | None = None, sim_profile: str | None = None,
           max_response_mb: float | None = None, policy: RetryPolicy | None = None,
           listener: Callable[[Job, Event], None] | None = None) -> Job:
    """Start a generation in the background and return its Job at once."""
    options = from_kwargs({k: v for k, v in locals().items()
                           if k not in ("prompt", "policy", "listener")})
    return submit_options(prompt, options, policy=policy, listener=listener)


def submit_options(prompt: str, options: Options, *, policy: RetryPolicy | None = None,
                   listener: Callable[[Job, Event], None] | None = None) -> Job:
    """`submit` for callers that already hold merged Options (magics, panel)."""
    request, settings, policy = prepare_options(prompt, options, policy=policy)
    return session().submit(request, settings, policy, listener)


JobRef = Job | GenerationResult | str  # a job, its result, or its id


def refine(job_or_id: JobRef, prompt: str, *, policy: RetryPolicy | None = None,
           listener: Callable[[Job, Event], None] | None = None, **options: Any) -> Job:
    """Continue a job's conversation: start a new Job whose request carries the turns so
    far (each earlier prompt, reference and image, with the model's thought signatures)
    and `prompt` as the next one, e.g. "make the sky darker". Takes the options of
    `submit`; size and aspect default to the refined job's. Works from the ledger alone:
    after a kernel restart, or on a job id from another session. A job that failed or is
    still running cannot be refined (ConfigError)."""
    return refine_options(job_or_id, prompt, from_kwargs(options), policy=policy,
                          listener=listener)


def refine_options(job_or_id: JobRef, prompt: str, options: Options, *,
                   policy: RetryPolicy | None = None,
                   listener: Callable[[Job, Event], None] | None = None) -> Job:
    """`refine` for callers that already hold merged Options (magics, panel)."""
    request, settings, policy = prepare_refine(job_or_id, prompt, options, policy=policy)
    return session().submit(request, settings, policy, listener)


def prepare_refine(job_or_id: JobRef, prompt: str, options: Options, *,
                   policy: RetryPolicy | None = None,
                   ) -> tuple[Request, config.Settings, RetryPolicy]:
    """`prepare_options` for a refine: the job's conversation is read from the ledger and
    its image files (this thread: files and SQLite) and checked; raises ConfigError."""
    job_id, home = _job_ref(job_or_id)
    store = session().store(config.resolve(provider="sim", home=options.home or home))
    live = session().jobs.get(job_id)
    conversation = load_conversation(store, job_id,
                                     still_running=live is not None and not live.done())
    return prepare_options(prompt, options, policy=policy, conversation=conversation)


def conversation_of(job_or_id: JobRef, *, home: str | Path | None = None) -> list[Exchange]:
    """The conversation that ends with a job, first turn first: for each turn its
    `job_id`, `number`, `prompt`, `image_path`, the model's `text`, its `references` and
    the job it refined (`parent`). Empty for a job that recorded no turn (it failed)."""
    job_id, job_home = _job_ref(job_or_id)
    store = session().store(config.resolve(provider="sim", home=home or job_home))
    return store.conversation(job_id)


def _job_ref(job_or_id: JobRef) -> tuple[str, Path | None]:
    """The job id, and the home of a Job handle (an id or a result is looked up in the
    configured home)."""
    if isinstance(job_or_id, Job):
        return job_or_id.id, job_or_id.home
    if isinstance(job_or_id, GenerationResult) and job_or_id.job_id:
        return job_or_id.job_id, None
    if isinstance(job_or_id, str) and job_or_id.strip():
        return job_or_id.strip(), None
    what = repr(job_or_id) if isinstance(job_or_id, str) else f"a {type(job_or_id).__name__}"
    raise ConfigError(f"refine takes a Job, its result or a job id, got {what}",
                      hint="e.g. refine(job, 'make the sky darker') or refine('001a2b', ...)")


def edit(image: str | Path, prompt: str, *, references: Iterable[str | Path] = (),
         **options: Any) -> Job:
    """Start an edit of `image` as `prompt` says, with `references` beside it (a logo, a
    face); returns its Job. The image goes first, so "this image" in a prompt means it. On the
    Gemini and chat wires the images travel inline; on the OpenAI images wire through
    /v1/images/edits. Takes the options of `submit` except `images`."""
    if "images" in options:
        raise ConfigError("edit() takes the image to edit and references=, not images=",
                          hint="edit('photo.png', 'make the sky darker', references=['logo.png'])")
    if isinstance(references, (str, Path)):
        references = [references]
    return submit(prompt, images=[image, *references], **options)


def generate(prompt: str, **options: Any) -> GenerationResult:
    """Generate and wait. Ctrl-C (Interrupt kernel) cancels the job and re-raises.
    Takes the options of `submit`."""
    job = submit(prompt, **options)
    try:
        return job.result()
    except KeyboardInterrupt:
        job.cancel()
        raise


async def agenerate(prompt: str, **options: Any) -> GenerationResult:
    """The async twin of generate(); awaits without blocking the caller's loop.
    Takes the options of `submit`."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future = loop.create_future()

    def finished(job: Job, event: Event) -> None:
        if isinstance(event, Finished):
            loop.call_soon_threadsafe(_settle, future, event)

    job = submit(prompt, **options)
    job.add_listener(finished)
    try:
        return await future
    except asyncio.CancelledError:
        job.cancel()
        raise


submit.__doc__ = (submit.__doc__ or "") + "\n" + _OPTION_DOCS + """\
        listener: fn(job, event), called on the background thread for each event.
"""
# refine() takes submit's options too, after the job it continues.
_sig = inspect.signature(submit)
refine.__signature__ = _sig.replace(parameters=[  # type: ignore[attr-defined]
    inspect.Parameter("job_or_id", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                      annotation="Job | GenerationResult | str"), *_sig.parameters.values()])
refine.__doc__ = (refine.__doc__ or "") + "\n" + _OPTION_DOCS
# generate() and agenerate() take submit's options: show them in help() and Shift-Tab too.
for _twin in (generate, agenerate):
    _sig = inspect.signature(submit)
    _twin.__signature__ = _sig.replace(  # type: ignore[attr-defined]
        parameters=[p for p in _sig.parameters.values() if p.name != "listener"],
        return_annotation=GenerationResult)
    _twin.__doc__ = (_twin.__doc__ or "") + "\n" + _OPTION_DOCS


def _settle(future: asyncio.Future, event: Finished) -> None:
    if not future.done():
        future.set_result(event.result)


def history(*, limit: int | None = None, all_sessions: bool = True,
            home: str | Path | None = None) -> History:
    """Jobs from the ledger, newest first; `.to_pandas()` when pandas is installed."""
    settings = config.resolve(provider="sim", home=home)
    store = session().store(settings)
    return load_history(store, limit=limit, session=None if all_sessions else store.session)
