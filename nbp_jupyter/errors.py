"""Every error nbp_jupyter raises or records, each with a one-line hint.

    NbpError
    ├── ConfigError            bad settings or input, found before any network call
    │   └── InsecureTransport  a key would travel over plain http to another host
    └── AttemptError           one HTTP attempt failed; `outcome` names how
        ├── AttemptTimeout       timeout       retriable, billed unknown
        ├── ConnectionFailed     connection    retriable, billed no/unknown
        ├── Overloaded           overloaded    retriable (503)
        ├── RateLimited          rate_limited  retriable, server's delay in retry_after_s
        ├── ServerError          server_error  retriable (500/502/504, proxy pages)
        ├── BadResponse          bad_response  retriable, a 200 we could not use
        ├── Blocked              blocked       final, safety block, not billed
        ├── AuthError            auth          final, key missing or refused
        ├── BadRequest           bad_request   final (400/404)
        └── Cancelled            cancelled     final, billed unknown if a request was out

Foreign errors (httpx, json, Pillow) are turned into these at one border, in the engine
and the providers, with `raise ... from exc`.
"""

from __future__ import annotations

from . import states
from .states import Billed, Outcome


class NbpError(Exception):
    """Base of every nbp_jupyter error. `hint` says what to do, in one line."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{text} — {self.hint}" if self.hint else text


class ConfigError(NbpError):
    """Settings or input that cannot work; raised before anything is sent."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows in place of the traceback (its hook for custom errors): bad
        input to `generate()` or `panel()` in a notebook is one line that says what to do,
        as it is in a magic. `%debug` still opens the frames."""
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self.one_line()}"]


class InsecureTransport(ConfigError):
    hint = ("use https, or pass allow_insecure_http=True / set NBP_ALLOW_INSECURE_HTTP=1 "
            "if you accept that anyone on the path can read the key")


class AttemptError(NbpError):
    """One attempt failed. Class attributes give the defaults for each kind."""

    outcome: Outcome = "bad_response"
    retriable = True
    billed: Billed = "no"

    def __init__(self, message: str, *, http_status: int | None = None,
                 retry_after_s: float | None = None, billed: Billed | None = None,
                 hint: str | None = None, tokens=None, gateway_cost: float | None = None):
        super().__init__(message, hint=hint)
        self.http_status = http_status
        self.retry_after_s = retry_after_s
        self.tokens = tokens  # pricing.Tokens of a billed answer without an image
        self.gateway_cost = gateway_cost  # USD the gateway says it charged, if it said
        self.gateway_retried = False  # a gateway answered this after retrying upstream itself
        if billed is not None:
            self.billed = billed


class AttemptTimeout(AttemptError):
    outcome, billed = "timeout", "unknown"
    hint = "the service may still finish and bill it; the next attempt is up to the policy"


class ConnectionFailed(AttemptError):
    outcome, billed = "connection", "unknown"


class Overloaded(AttemptError):
    outcome = "overloaded"


class RateLimited(AttemptError):
    outcome = "rate_limited"


class ServerError(AttemptError):
    outcome = "server_error"


class BadResponse(AttemptError):
    outcome, billed = "bad_response", "unknown"


class Blocked(AttemptError):
    outcome, retriable = "blocked", False
    hint = "the prompt or image was blocked by the safety filter; it was not billed — rephrase it"


class AuthError(AttemptError):
    outcome, retriable = "auth", False


class BadRequest(AttemptError):
    outcome, retriable = "bad_request", False


class Cancelled(AttemptError):
    outcome, retriable, billed = "cancelled", False, "unknown"
    hint = "cancelled by you; a request already sent may still be billed"


OUTCOMES, FINAL_OUTCOMES = states.OUTCOMES, states.FINAL_OUTCOMES  # kept for old imports


# Every size is refused now and then, and the larger the size the more often (success per
# call: 1K above 95 %, 2K about 85 %, 4K below 50 %, worse in waves; docs/facts.md).
OVERLOADED_HINT = ("the model is overloaded; this comes and goes, more often the larger the "
                   "size, so a later try may get through")


def from_status(status: int, message: str, *, retry_after_s: float | None = None,
                key_hint: str = "") -> AttemptError:
    """The AttemptError for a non-200 HTTP answer, shared by both wire formats."""
    text = f"HTTP {status}: {message}"
    if status == 429:
        return RateLimited(text, http_status=status, retry_after_s=retry_after_s,
                           hint="quota or rate limit; waiting as the server asked")
    if status == 503:  # the size is not known here: a hint true at 1K as at 4K (it said
        # "common for 4K at peak hours" on 1K attempts); docs/facts.md "Latency and success"
        return Overloaded(text, http_status=status, retry_after_s=retry_after_s,
                          hint=OVERLOADED_HINT)
    if status in (401, 403):
        return AuthError(text, http_status=status, hint=key_hint or "check the API key")
    if status == 404:
        return BadRequest(text, http_status=status,
                          hint="check the model name and the base URL (NBP_MODEL, NBP_BASE_URL)")
    if status in (408, 500, 502, 504) or status >= 500:
        return ServerError(text, http_status=status, retry_after_s=retry_after_s)
    return BadRequest(text, http_status=status, hint="the request was refused as invalid")
