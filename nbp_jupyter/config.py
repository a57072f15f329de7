"""Effective settings: call arguments win, then NBP_* environment variables, then defaults.

With no key anywhere the provider is the built-in simulator, and every result says so.
"""

from __future__ import annotations

import ipaddress
import os
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError, InsecureTransport

PROVIDERS = ("gemini", "openai", "chat", "openrouter", "sim")
# The wire each provider speaks: the simulator speaks Gemini's, OpenRouter chat completions.
WIRES = {"sim": "gemini", "openrouter": "chat"}
OPENROUTER_URL = "https://openrouter.ai/api"  # + /v1/chat/completions (docs/facts.md)
DEFAULT_BASE_URLS = {"gemini": "https://generativelanguage.googleapis.com",
                     "openai": "https://api.openai.com", "chat": OPENROUTER_URL,
                     "openrouter": OPENROUTER_URL}
DEFAULT_MODELS = {"gemini": "gemini-3-pro-image-preview", "openai": "nano-banana-pro",
                  "chat": "google/gemini-3-pro-image-preview",
                  "openrouter": "google/gemini-3-pro-image-preview",
                  "sim": "gemini-3-pro-image-preview"}
KEY_VARS = {"gemini": ("NBP_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"),
            "openai": ("NBP_API_KEY", "OPENAI_API_KEY"),
            "chat": ("NBP_API_KEY", "OPENROUTER_API_KEY"),
            "openrouter": ("NBP_API_KEY", "OPENROUTER_API_KEY")}
SIM_TIME_SCALE = 0.05  # the no-key simulator plays a typical 4K call (~120 s) in ~6 s
SIM_KEY = "simulator-key"  # the simulator wants some key, like the real services
DEFAULT_CONCURRENCY = 8
# A 4K PNG is 10-25 MB (docs/facts.md "Answers on the wire"), ~34 MB as base64 in JSON; 128 MB leaves room and still stops
# a runaway or hostile body before it eats the kernel's memory.
DEFAULT_MAX_RESPONSE_MB = 128


@dataclass(frozen=True, kw_only=True)
class Settings:
    provider: str
    base_url: str | None  # None for "sim": the session starts one on demand
    model: str
    api_key: str | None = field(repr=False)
    home: Path
    time_scale: float
    allow_insecure_http: bool = False
    max_concurrency: int = DEFAULT_CONCURRENCY
    sim_profile: str = "typical"
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_MB * 1024 * 1024
    # other providers the fallback ladder may step to, each with its own key and endpoint
    alternates: tuple[Settings, ...] = field(default=(), repr=False)

    def for_provider(self, provider: str | None) -> Settings:
        """These settings, or the alternate's for a ladder rung on another provider."""
        if provider is None or provider == self.provider:
            return self
        for other in self.alternates:
            if other.provider == provider:
                return other
        raise ConfigError(f"no settings for fallback provider {provider!r}")

    @property
    def wire(self) -> str:
        """The wire format spoken (providers.for_wire)."""
        return WIRES.get(self.provider, self.provider)

    def describe(self) -> dict[str, object]:
        """What `%nbp_config` shows: everything but the key, which is only said to exist."""
        proxy = proxy_for(self.base_url) if self.base_url else None
        return {"provider": self.provider, "base_url": self.base_url or "(built-in simulator)",
                "proxy": mask_url(proxy) if proxy else "none",
                "model": self.model, "api_key": "set" if self.api_key else "not set",
                "home": str(self.home), "time_scale": self.time_scale,
                "allow_insecure_http": self.allow_insecure_http,
                "max_concurrency": self.max_concurrency, "sim_profile": self.sim_profile,
                "max_response_mb": self.max_response_bytes / 2**20}


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _key_from_env(provider: str) -> str | None:
    for name in KEY_VARS.get(provider, ()):
        if _env(name):
            return _env(name)
    return None


def default_provider() -> str:
    """NBP_PROVIDER, else whichever provider has a key in the environment, else the simulator."""
    chosen = _env("NBP_PROVIDER")
    if chosen:
        return chosen.lower()
    if _env("GEMINI_API_KEY") or _env("GOOGLE_API_KEY"):
        return "gemini"
    if _env("OPENAI_API_KEY"):
        return "openai"
    if _env("OPENROUTER_API_KEY"):
        return "openrouter"
    if _env("NBP_API_KEY"):
        return "gemini"
    return "sim"


def known_provider(name: str) -> str:
    """`name` as a provider we speak ('Gemini' -> 'gemini'); ConfigError listing them."""
    provider = name.lower()
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {name!r}", hint=f"use one of {', '.join(PROVIDERS)}")
    return provider


def resolve(*, provider: str | None = None, base_url: str | None = None,
            model: str | None = None, api_key: str | None = None,
            time_scale: float | None = None, home: str | Path | None = None,
            allow_insecure_http: bool | None = None, max_concurrency: int | None = None,
            sim_profile: str | None = None, max_response_mb: float | None = None) -> Settings:
    """Settings for one call; raises ConfigError with a fix when they cannot work."""
    provider = known_provider(provider or default_provider())
    if provider == "sim":
        key, url = api_key or SIM_KEY, base_url
    else:
        key = api_key or _key_from_env(provider)
        if not key:
            names = " or ".join(KEY_VARS[provider])
            raise ConfigError(f"no API key for provider {provider!r}",
                              hint=f"set {names}, or use provider='sim' to try the simulator")
        url = (base_url or _env("NBP_BASE_URL") or _env(f"NBP_{provider.upper()}_BASE_URL")
               or DEFAULT_BASE_URLS[provider])
    if url is not None:
        url = normalize_base_url(url)
    time_scale = _number("time_scale", time_scale, float,
                         SIM_TIME_SCALE if provider == "sim" else 1.0)
    # 0 or fewer requests in flight would leave every job queued for ever
    concurrency = _number("max_concurrency", max_concurrency, int, DEFAULT_CONCURRENCY)
    response_mb = _number("max_response_mb", max_response_mb, float, DEFAULT_MAX_RESPONSE_MB)
    profile = sim_profile or _env("NBP_SIM_PROFILE") or "typical"
    if provider == "sim":
        _check_profile(profile)
    allow = allow_insecure_http if allow_insecure_http is not None else (
        _env("NBP_ALLOW_INSECURE_HTTP") in ("1", "true", "yes"))
    settings = Settings(
        provider=provider, base_url=url,
        model=model or _env("NBP_MODEL") or DEFAULT_MODELS[provider], api_key=key,
        home=expand_path(home or _env("NBP_HOME") or "nbp-output"), time_scale=time_scale,
        allow_insecure_http=allow, max_concurrency=int(concurrency), sim_profile=profile,
        max_response_bytes=int(response_mb * 2**20))
    if url is not None:
        check_transport(url, allow)
    return settings


def _number(name: str, given: float | None, kind: type, default: float) -> float:
    """A setting that must be a positive number: the call's, else NBP_<NAME>'s, else the
    default. A word in the variable, or zero and below, is a one-line error naming it."""
    var = f"NBP_{name.upper()}"
    said = f"{name}={given!r}" if given is not None else f"{var}={_env(var)!r}"
    value: object = given if given is not None else _env(var)
    if value is None:
        return default
    number = _positive(value, kind)
    if number is None:
        raise ConfigError(f"{said}: {name} must be {_WHAT[kind]} above 0",
                          hint=f"fix it in %config Nbp.{name} or {var}, or leave it unset "
                               f"for {default:g}")
    return number


_WHAT = {int: "a whole number", float: "a number"}


def _positive(value: object, kind: type) -> float | None:
    """`value` as a number of `kind` above 0, or None when it is not one."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        return None
    if not number > 0 or (kind is int and number != float(value)):
        return None
    return number


def _check_profile(profile: str) -> None:
    """The built-in simulator's profile must be one it plays (it failed when it started,
    with a traceback, after the job was already shown)."""
    from .sim.model import PROFILES

    if profile not in PROFILES:
        raise ConfigError(f"unknown simulator profile {profile!r}",
                          hint=f"use one of {', '.join(PROFILES)} (Nbp.sim_profile or "
                               f"NBP_SIM_PROFILE)")


def check_default(name: str, value: object) -> object:
    """A `%config Nbp.NAME` value as it is kept ('4k' -> '4K'), checked when it is set so a
    mistake is refused there, not by the next cell; ConfigError saying what is allowed."""
    from . import sizes

    if value is None:
        return None
    try:
        if name == "size":
            return sizes.normalize_resolution(str(value))
        if name == "aspect":
            return sizes.normalize_aspect(str(value))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if name == "provider":
        return known_provider(str(value))
    if name in ("time_scale", "max_concurrency"):
        kind = int if name == "max_concurrency" else float
        number = _positive(value, kind)
        if number is None:
            raise ConfigError(f"{name} must be {_WHAT[kind]} above 0, or None for the default")
        return number
    if name == "sim_profile":
        _check_profile(str(value))
    if name == "fallback" and str(value).strip().lower() not in ("", "none", "false", "no"):
        from .policy import build_ladder

        try:  # only its form: another provider's key may be set later
            build_ladder("4K", str(value))
        except ValueError as exc:
            raise ConfigError(f"{exc}; write e.g. '2K, 1K', 'openai:4K, 2K' or 'none'") from None
    if name == "base_url":
        normalize_base_url(str(value))
    return value


# Where a setting comes from when no call or %config says it, first set wins
# (resolve and default_provider read them in this order).
ENV_SOURCES = {"provider": ("NBP_PROVIDER", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY",
                            "OPENROUTER_API_KEY", "NBP_API_KEY"),
               "model": ("NBP_MODEL",), "home": ("NBP_HOME",), "time_scale": ("NBP_TIME_SCALE",),
               "max_concurrency": ("NBP_MAX_CONCURRENCY",), "sim_profile": ("NBP_SIM_PROFILE",),
               "max_response_mb": ("NBP_MAX_RESPONSE_MB",),
               "allow_insecure_http": ("NBP_ALLOW_INSECURE_HTTP",)}


def origin(name: str, settings: Settings, said: set[str] | frozenset[str]) -> str:
    """Where `%nbp_config`'s row `name` came from: '%config Nbp.NAME', the environment
    variable that set it, or 'default'."""
    if name in said:
        return f"%config Nbp.{name}"
    if name == "proxy":
        return "HTTPS_PROXY / HTTP_PROXY / NO_PROXY"
    if settings.provider == "sim" and name in ("base_url", "api_key"):
        return "built-in simulator"
    names = ENV_SOURCES.get(name, ())
    if name == "base_url":
        names = ("NBP_BASE_URL", f"NBP_{settings.provider.upper()}_BASE_URL")
    elif name == "api_key":
        names = KEY_VARS.get(settings.provider, ())
    return next((var for var in names if _env(var)), "default")


# A fallback endpoint takes its key only from its own provider's variables: NBP_API_KEY
# belongs to the main provider, and sending it to another company's server would leak it.
ALTERNATE_KEY_VARS = {"gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"), "openai": ("OPENAI_API_KEY",),
                      "chat": ("OPENROUTER_API_KEY",), "openrouter": ("OPENROUTER_API_KEY",)}


def resolve_alternate(provider: str, primary: Settings) -> Settings:
    """Settings for a fallback rung on another provider; raises ConfigError with a fix."""
    provider = provider.lower()
    if provider not in PROVIDERS:
        raise ConfigError(f"unknown provider {provider!r} in the fallback list",
                          hint=f"write e.g. openai:2K; providers are {', '.join(PROVIDERS)}")
    if provider == "openrouter":  # its own public endpoint, whatever NBP_CHAT_BASE_URL says
        key = _env("OPENROUTER_API_KEY")
        if not key:
            raise ConfigError("no API key for fallback provider 'openrouter'",
                              hint="set OPENROUTER_API_KEY")
        return replace(primary, provider=provider, base_url=OPENROUTER_URL,
                       model=DEFAULT_MODELS[provider], api_key=key, alternates=())
    key, url = SIM_KEY, _env(f"NBP_{provider.upper()}_BASE_URL")
    if provider != "sim":
        names = ALTERNATE_KEY_VARS[provider]
        key = next((_env(n) for n in names if _env(n)), None)
        if not key:
            raise ConfigError(f"no API key for fallback provider {provider!r}",
                              hint=f"set {' or '.join(names)}")
        url = url or DEFAULT_BASE_URLS[provider]
    if url is not None:
        url = normalize_base_url(url)
        check_transport(url, primary.allow_insecure_http)
    return replace(primary, provider=provider, base_url=url, model=DEFAULT_MODELS[provider],
                   api_key=key, alternates=())


def expand_path(path: str | Path) -> Path:
    try:
        return Path(path).expanduser()
    except RuntimeError:  # '~someone' with no such user: take the name literally
        return Path(path)


def normalize_base_url(url: str) -> str:
    """Accept 'https://host', 'https://host/' or 'https://host/v1'; return 'https://host'."""
    text = url.strip().rstrip("/")
    for suffix in ("/v1beta", "/v1"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {url!r} is not an http(s) URL",
                          hint="e.g. https://generativelanguage.googleapis.com")
    return text


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(url: str, allow_insecure_http: bool) -> None:
    """Refuse to send a key over plain http to anything but this machine, unless allowed."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or "") \
            and not allow_insecure_http:
        raise InsecureTransport(
            f"refusing to send the API key over plain http to {parts.hostname}")


def proxy_for(url: str) -> str | None:
    """The proxy httpx would use for `url` from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, unless
    NO_PROXY exempts its host; None for a direct connection."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    host = parts.hostname or ""
    if proxies.get("no") and urllib.request.proxy_bypass_environment(host, proxies):
        return None
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and "://" not in proxy:  # 'host:3128', as curl accepts it
        proxy = f"http://{proxy}"
    return proxy or None


def mask_url(url: str) -> str:
    """The URL with any user:password replaced by '***', for showing it."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
