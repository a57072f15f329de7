"""When to try again, at which size, after how long: pure decisions on plain data.

Given what happened so far and the clock, `decide` answers "wait W s, then try rung R with
timeout T" or "stop". No sockets, no sleeping, no randomness of its own (the caller passes
a number in [0, 1) for jitter), so every decision is testable without a network.

How it differs from the seed articles' fixed "3 tries at 4K, 60 s doubling, then 2K":
- A fast refusal (503, 429, 500 in a second or two) costs nothing, so it is retried soon,
  with short exponential backoff and jitter; the server's own delay wins when given.
- A slow failure (a timeout, a 504 after the server's 600 s limit, a connection cut after
  minutes) means the tier is saturated now; another try at the same size would likely burn
  another ten minutes, so the policy steps down the ladder at once when it may.
- With a deadline, an attempt is only started if its resolution's median latency fits in
  what is left, and its timeout never runs past the deadline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from . import sizes
from .errors import FINAL_OUTCOMES

# Per-attempt timeouts (seconds).
# 4K 660 s: the server gives up at 600 s [seed]; one more minute carries a 25 MB body home
#   (seed 1 recommends 660 s).
# 2K 300 s: P99 latency is 180 s [seed]; 300 s is seed 2's figure and leaves the January
#   2026 slowdown (180 s+) room.
# 1K 240 s: P99 is 150 s [seed]; seed 1's 60 s would cut a quarter of normal 1K calls
#   (P50 45 s, P95 90 s), seed 2's 300 s waits a minute longer than any healthy call.
DEFAULT_TIMEOUTS: dict[str, float] = {"1K": 240.0, "2K": 300.0, "4K": 660.0}
# Tries per rung: the seed's 3 at 4K, 2 at 2K; 3 at 1K because it is the last resort.
DEFAULT_ATTEMPTS: dict[str, int] = {"1K": 3, "2K": 2, "4K": 3}
# Published latency P50 and P95 per resolution [seed]. The median is what an attempt needs
# to have a fair chance; both are what the status line promises before we have our own.
PUBLISHED_LATENCY: dict[str, tuple[float, float]] = {
    "1K": (45.0, 90.0), "2K": (65.0, 120.0), "4K": (120.0, 170.0)}
MEDIAN_LATENCY: dict[str, float] = {r: p50 for r, (p50, _) in PUBLISHED_LATENCY.items()}
# Hedge (opt-in): a call still running at its size's published P99 [seed] is most likely
# hung or failing, so the next size down starts beside it and the first image wins. Healthy
# calls reach P99 once in a hundred, so a hedge seldom doubles a bill that was on its way.
HEDGE_AFTER: dict[str, float] = {"1K": 150.0, "2K": 180.0, "4K": 250.0}
LEARN_MIN_SAMPLES = 20
LEARN_FACTOR = 2.5
SLOW_FAILURE_SHARE = 0.5  # a failure after half the timeout counts as slow
SLOW_OUTCOMES = frozenset({"timeout"})


@dataclass(frozen=True)
class Rung:
    """One step of the ladder: a resolution and, optionally, another model or provider."""

    resolution: str
    model: str | None = None
    provider: str | None = None  # None: the job's own provider and endpoint

    def label(self) -> str:
        text = self.resolution if self.model is None else f"{self.model}@{self.resolution}"
        return text if self.provider is None else f"{self.provider}:{text}"


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    ladder: tuple[Rung, ...]
    attempts: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ATTEMPTS))
    timeouts: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))
    wait_initial: float | dict[str, float] = 2.0  # first backoff after a fast failure (or per size)
    wait_max: float = 60.0
    wait_jitter: float = 2.0  # up to this many seconds added at random
    max_server_wait: float = 300.0  # a longer server-given delay: step down instead, if we may
    deadline: float | None = None  # whole job, seconds from its start
    step_down_on_slow_failure: bool = True
    learn_timeouts: bool = True  # tighten timeouts to what healthy calls take here (see learned_timeout)
    hedge_after: dict[str, float] | None = None  # e.g. HEDGE_AFTER; None: never hedge
    learn_hedge: bool = True  # hedge later when this endpoint's healthy calls are slower


@dataclass(frozen=True)
class Past:
    """What the policy needs to know about one finished attempt."""

    rung: int
    outcome: str
    started_s: float
    elapsed_s: float
    timeout_s: float
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Try:
    rung: int
    wait_s: float
    timeout_s: float
    reason: str = ""


@dataclass(frozen=True)
class Stop:
    reason: str


def build_ladder(size: str, fallback: bool | list[str] | tuple[str, ...] | str = True,
                 model: str | None = None) -> tuple[Rung, ...]:
    """The rungs to climb down. `fallback` is True (every smaller size), False, or a list of
    sizes, model names and other providers ('2K', '1K', 'gemini-2.5-flash-image',
    'model@1K', 'openai:4K', 'openai:some-model@2K')."""
    first = Rung(sizes.normalize_resolution(size))
    if fallback is True:
        rest = [Rung(r) for r in reversed(sizes.RESOLUTIONS) if sizes.rank(r) < sizes.rank(first.resolution)]
    elif not fallback:
        rest = []
    else:
        items = fallback.split(",") if isinstance(fallback, str) else list(fallback)
        rest = [parse_rung(item, first.resolution) for item in items if str(item).strip()]
    return (first, *rest)


def other_providers(ladder: tuple[Rung, ...], provider: str) -> list[str]:
    """The providers besides `provider` that a ladder steps to, each once."""
    return sorted({rung.provider for rung in ladder} - {None, provider})


def trim_ladder(size: str, fallback: bool | str) -> bool | str:
    """A configured fallback list (Nbp.fallback) fitted to one request: steps above the
    requested size are dropped, and so are plain repeats of it, so "2K, 1K" set for all cells
    does not send a 1K request up to 2K. False when nothing is left."""
    if not isinstance(fallback, str):
        return fallback
    try:
        first = sizes.normalize_resolution(size)
        rungs = [(item, parse_rung(item, first)) for item in fallback.split(",") if item.strip()]
    except ValueError:
        return fallback  # prepare() turns it into a clear error
    keep = [item.strip() for item, rung in rungs
            if sizes.rank(rung.resolution) < sizes.rank(first)
            or (rung.resolution == first and (rung.provider or rung.model))]
    return ", ".join(keep) or False


def parse_rung(item: str, default_resolution: str) -> Rung:
    text = str(item).strip()
    provider = re.fullmatch(r"([A-Za-z]+):(.*)", text)
    if provider:  # 'openai:2K': the same ladder step on another endpoint
        rung = parse_rung(provider[2] or default_resolution, default_resolution)
        return replace(rung, provider=provider[1].lower())
    if "@" in text:
        name, res = text.rsplit("@", 1)
        return Rung(sizes.normalize_resolution(res), name.strip())
    if re.fullmatch(r"\d+k", text, re.IGNORECASE):  # looks like a size: must be one
        return Rung(sizes.normalize_resolution(text))
    return Rung(default_resolution, text)


def percentile(ordered: list[float], q: float) -> float:
    """The q-quantile (0..1) of an already sorted, non-empty list, nearest rank below."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def learned_timeout(resolution: str, latencies: list[float]) -> float | None:
    """A per-attempt timeout from this endpoint's own successful calls, or None.

    With at least LEARN_MIN_SAMPLES successes: 2.5 x their P95, never below twice the
    published P95 (so one lucky streak cannot starve a normal call) and never above the
    default. P95 rather than P99 because the tail of a few hundred samples is noise. By the
    published 4K figures (P95 170 s, P99 250 s, limit 600 s) a 425 s cut loses about 0.5 %
    of successes and saves 235 s on every hung call.
    """
    if len(latencies) < LEARN_MIN_SAMPLES:
        return None
    p95 = percentile(sorted(latencies), 0.95)
    floor = 2.0 * PUBLISHED_LATENCY[resolution][1]
    return min(DEFAULT_TIMEOUTS[resolution], max(LEARN_FACTOR * p95, floor))


def decide(policy: RetryPolicy, history: list[Past], now: float, jitter: float = 0.0,
           learned: dict[str, float] | None = None) -> Try | Stop:
    """The next step after `history` (oldest first) at time `now` (seconds since job start).
    `learned` maps a resolution to a timeout learned from this endpoint (learned_timeout)."""
    policy = _tightened(policy, learned)
    if not history:
        return _fit(policy, 0, 0.0, now, "first attempt")
    last = history[-1]
    if last.outcome == "ok":
        return Stop("done")
    if last.outcome in FINAL_OUTCOMES:
        return Stop(f"{last.outcome}: not worth retrying")
    rung = last.rung
    tries_here = sum(1 for p in history if p.rung == rung)
    fails_in_row = _trailing(history, rung)
    has_lower = rung + 1 < len(policy.ladder)
    resolution = policy.ladder[rung].resolution
    slow = last.outcome in SLOW_OUTCOMES or last.elapsed_s >= SLOW_FAILURE_SHARE * last.timeout_s
    server_wait = last.retry_after_s

    stay = tries_here < policy.attempts.get(resolution, 1)
    reason = f"retry {policy.ladder[rung].label()}"
    if stay and has_lower and slow and policy.step_down_on_slow_failure:
        stay, reason = False, f"slow failure at {resolution}: step down"
    if stay and has_lower and server_wait is not None and server_wait > policy.max_server_wait:
        stay, reason = False, f"server asks for {server_wait:.0f} s: step down instead"

    if stay:
        if server_wait is not None:
            wait = server_wait
        else:
            wait = min(policy.wait_max, _base_wait(policy, resolution) * 2 ** (fails_in_row - 1))
            wait += policy.wait_jitter * jitter
        return _fit(policy, rung, wait, now, reason)
    if not has_lower:
        return Stop(f"gave up after {tries_here} attempt(s) at {policy.ladder[rung].label()}")
    # Stepping down: a slow failure already waited long enough; a fast one backs off briefly.
    wait = 0.0 if slow else _base_wait(policy, resolution) + policy.wait_jitter * jitter
    if server_wait is not None and server_wait <= policy.max_server_wait:
        wait = server_wait
    if not reason.startswith(("slow", "server")):
        reason = f"{tries_here} failure(s) at {policy.ladder[rung].label()}: step down"
    return _fit(policy, rung + 1, wait, now, reason)


def learned_hedge(resolution: str, latencies: list[float]) -> float | None:
    """When to hedge, from this endpoint's own successful calls, or None.

    With at least LEARN_MIN_SAMPLES successes: their P99, never earlier than the published
    P99. When the service is slow for everyone (January 2026: 180 s+ where 20-40 s was
    usual), a fixed point would hedge nearly every call and double the bill for nothing.
    """
    if len(latencies) < LEARN_MIN_SAMPLES:
        return None
    return max(HEDGE_AFTER[resolution], percentile(sorted(latencies), 0.99))


def hedge(policy: RetryPolicy, main: Try, now: float, learned: dict[str, float] | None = None,
          learned_hedge: dict[str, float] | None = None) -> Try | None:
    """The hedge for attempt `main` decided at `now`: a try one rung down (or lower, to fit a
    deadline) whose `wait_s` counts from the main attempt's start; None when hedging is off,
    there is no lower rung, or the main attempt's timeout comes first. `learned_hedge`
    (learned_hedge per size) can only make the hedge later."""
    if not policy.hedge_after or main.rung + 1 >= len(policy.ladder):
        return None
    policy = _tightened(policy, learned)
    resolution = policy.ladder[main.rung].resolution
    after = policy.hedge_after.get(resolution)
    if after is not None and learned_hedge and policy.learn_hedge:
        after = max(after, learned_hedge.get(resolution, after))
    if after is None or after >= main.timeout_s:
        return None
    found = _fit(policy, main.rung + 1, 0.0, now + main.wait_s + after,
                 f"hedge: {resolution} still running after {after:.0f} s")
    return None if isinstance(found, Stop) else replace(found, wait_s=after)


def _tightened(policy: RetryPolicy, learned: dict[str, float] | None) -> RetryPolicy:
    if learned and policy.learn_timeouts:
        return replace(policy, timeouts={r: min(t, learned.get(r, t))
                                         for r, t in policy.timeouts.items()})
    return policy


def _fit(policy: RetryPolicy, rung: int, wait: float, now: float, reason: str) -> Try | Stop:
    """Try `rung` (or a lower one) if its median latency fits before the deadline."""
    for index in range(rung, len(policy.ladder)):
        resolution = policy.ladder[index].resolution
        timeout = policy.timeouts[resolution]
        if policy.deadline is None:
            return Try(index, wait, timeout, reason)
        left = policy.deadline - now - wait
        if left >= MEDIAN_LATENCY[resolution]:
            why = reason if index == rung else f"{reason}; {resolution} is what fits the deadline"
            return Try(index, wait, min(timeout, left), why)
    return Stop("deadline: no attempt can finish in the time left")


def _base_wait(policy: RetryPolicy, resolution: str) -> float:
    if isinstance(policy.wait_initial, dict):
        return policy.wait_initial.get(resolution, 0.0)
    return policy.wait_initial


def _trailing(history: list[Past], rung: int) -> int:
    count = 0
    for past in reversed(history):
        if past.rung != rung or past.outcome == "ok":
            break
        count += 1
    return count
