"""When to try again, at which size, after how long: pure decisions on plain data.

Given what happened so far and the clock, `decide` answers "wait W s, then try rung R with
timeout T" or "stop". No sockets, no sleeping, no randomness of its own (the caller passes
a number in [0, 1) for jitter), so every decision is testable without a network.

How it differs from the seed articles' fixed "3 tries at 4K at 660 s, 60 s doubling, then 2K"
(docs/facts.md):
- A healthy call is 99 % done by its size's published P99 (4K: 250 s), and hangs far
  outnumber healthy calls still out past the P95, so an attempt is cut at 0.8 x the P99
  (times the pace below), not at the server's 600 s limit: a hung call costs a third as
  much, and a second try at the size asked fits inside the seeds' first timeout.
  When the service is slow for everyone, the cut moves out with the pace of recent
  successes (and, before the first one, with what the ledger learned in earlier sessions).
- A fast refusal (503, 429, 500 in a second or two) costs nothing, so it is retried soon,
  with short exponential backoff and jitter; the server's own delay wins when given.
- Whether a failed size is tried again or the ladder steps down is decided from the whole
  session, not from one call: a `Regime` summarises the recent attempts of every job at the
  endpoint. A size whose last several attempts all failed is in a wave (its breaker is
  open): jobs step down at once instead of burning minutes on it, until a quiet spell
  lets the next job probe it again. A single failure at a healthy size is retried there,
  and tries are weighed by what they cost: quick refusals earn the size asked one more.
- With a deadline, an attempt is only started if its resolution's median latency fits in
  what is left, and its timeout never runs past the deadline.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .stats import percentile  # noqa: F401  (policy.percentile stays importable)
from . import facts, sizes
from .errors import FINAL_OUTCOMES

# Per-attempt timeout ceilings (seconds), reached only when the service is slow for everyone
# (the cut is normally TIMEOUT_MARGIN x P99, below): the server gives up on any call at
# 600 s, and one more minute carries a 25 MB body home (the seed articles' 660 s for 4K;
# docs/facts.md "Latency and success", "The seed articles' client policy"). In January 2026
# healthy calls of every size took 180 s and more, so the smaller sizes get the same ceiling.
DEFAULT_TIMEOUTS: dict[str, float] = {r: facts.SEED_TIMEOUTS["4K"] for r in facts.LATENCY}
# Tries per rung: the seed's 3 at 4K, 2 at 2K; 3 at 1K because it is the last resort.
DEFAULT_ATTEMPTS: dict[str, int] = {"1K": 3, "2K": 2, "4K": 3}
# Published latency P50 and P95 per resolution (docs/facts.md "Latency and success"). The
# median is what an attempt needs to have a fair chance; both are what the status line
# promises before we have our own.
PUBLISHED_LATENCY: dict[str, tuple[float, float]] = {
    r: (q.p50, q.p95) for r, q in facts.LATENCY.items()}
MEDIAN_LATENCY: dict[str, float] = {r: q.p50 for r, q in facts.LATENCY.items()}
PUBLISHED_P99: dict[str, float] = {r: q.p99 for r, q in facts.LATENCY.items()}
# Hedge after a fixed point (opt-in, `hedge=<seconds>` and the P99 below): a call still
# running at its size's published P99 is most likely hung or failing, so the next size down
# starts beside it and the first image wins. Healthy calls reach P99 once in a hundred.
HEDGE_AFTER: dict[str, float] = dict(PUBLISHED_P99)
# The hedge `hedge=True` asks for: at the size's published P95 times the session's pace (4K
# 170 s), the same size again while it is healthy, the next size down while it is failing for
# every job. With 4K at 50 % and a third of failures hanging, a 4K call still out at 170 s
# is hung about seven times in eight (0.175 / (0.175 + 0.5 x 0.05); docs/facts.md "Latency
# and success"), so a second 4K call beside it is the retry started 30 s before the cut.
SAME_SIZE_HEDGE_AFTER: dict[str, float] = {r: q.p95 for r, q in facts.LATENCY.items()}
# An attempt is cut at 0.8 x its size's P99 times the service's pace (4K: 200 s when calls
# run at the published speed, between the P95 of 170 s and the P99 of 250 s): a few percent of
# healthy calls are cut, and retried at the same size, while every hung call costs 200 s
# instead of 660. Among 4K calls still out at 200 s, hangs outnumber healthy ones about ten
# to one (docs/facts.md "Latency and success"; benchmarks/README.md for how this was
# chosen: 0.8 beat 1.0 in every world, 0.7 began to give 4K images away). Before the
# session has seen a success the pace is taken as UNSEEN_PACE (4K: 400 s), as slow services
# are not rare.
TIMEOUT_MARGIN = 0.8
# Tries are counted, but a fast refusal costs seconds where a hang costs the cut: at the size
# asked, a job with at most one slow failure there gets this many tries beyond `attempts`.
QUICK_EXTRA_TRIES = 1
# Session-wide evidence (Regime): a size whose last BREAKER_FAILURES attempts, across all
# jobs, all failed is in a wave; it is probed again BREAKER_COOLDOWN_S after its last
# failure. It must not open by chance when a size is merely bad: at night 4K succeeds about
# 30 % of the time (docs/facts.md "Latency and success"), where six failures in a row follow
# about one attempt in eight, ten about one in 35 (at 50 %: one in 1,000). The next success
# closes the breaker again. These settings and PATIENCE_S are the best of searches in six
# worlds (benchmarks/policy_search.py, benchmarks/README.md).
BREAKER_FAILURES = 10
BREAKER_COOLDOWN_S = 180.0
EVIDENCE_WINDOW_S = 900.0  # older outcomes say nothing about now
PACE_MIN_SAMPLES = 2
PATIENCE_S = 600.0
UNSEEN_PACE = 2.0
LEARN_MIN_SAMPLES = facts.MIN_SAMPLES
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
    step_down_on_slow_failure: bool = False  # True: step down after any slow failure, whatever the session saw
    learn_timeouts: bool = True  # tighten timeouts to what healthy calls take here (see learned_timeout)
    hedge_after: dict[str, float] | None = None  # e.g. HEDGE_AFTER; None: never hedge
    # True: a hedge asks for the same size while that size is healthy for the session, and
    # for the next healthy size down only while it is failing for every job (a wave); its
    # point moves with the session's pace, like the cut, and the ledger's hedge point is
    # not used (it is a P99, the cut itself).
    hedge_same_size: bool = False
    learn_hedge: bool = True  # hedge later when this endpoint's healthy calls are slower
    # Cut at TIMEOUT_MARGIN x P99 x pace, within `timeouts`; None: `timeouts` as they are.
    timeout_margin: float | None = TIMEOUT_MARGIN
    # The pace assumed before any success was seen (a session's first burst): room for a
    # service that is slower than published, until the first answers tell.
    unseen_pace: float = UNSEEN_PACE
    breaker_failures: int | None = BREAKER_FAILURES  # None: ignore the session's evidence
    breaker_cooldown_s: float = BREAKER_COOLDOWN_S
    # While the size asked for is failing for everyone, a job younger than this waits for
    # it to come back (probing it when the breaker half-opens) before stepping down.
    patience_s: float = PATIENCE_S
    escalate: bool = False  # True: after a cut at a healthy size, the retry there waits twice as long
    quick_extra_tries: int = QUICK_EXTRA_TRIES  # see QUICK_EXTRA_TRIES; 0: `attempts` it is


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


@dataclass(frozen=True)
class Seen:
    """One finished attempt of any job at this endpoint, on the session's clock."""

    resolution: str
    outcome: str
    ended_s: float
    elapsed_s: float
    timeout_s: float | None = None  # the cut it was given


@dataclass(frozen=True)
class Regime:
    """What the session's recent attempts say: how slow healthy calls are against the
    published figures (`pace`, 1 or more) and which sizes are failing for every job now."""

    pace: float | None = None  # None: no recent success to judge by
    failing: dict[str, float] = field(default_factory=dict)  # size -> seconds until a probe


def regime(seen: Sequence[Seen], now: float, policy: RetryPolicy | None = None) -> Regime:
    """The Regime at `now` from `seen` (oldest first; the caller keeps the last few dozen)."""
    policy = policy or RetryPolicy(ladder=())
    recent = [s for s in seen if now - s.ended_s <= EVIDENCE_WINDOW_S]
    paces = sorted([s.elapsed_s / MEDIAN_LATENCY[s.resolution] for s in recent
                    if s.outcome == "ok" and s.resolution in MEDIAN_LATENCY][-20:])
    pace = max(1.0, percentile(paces, 0.5)) if len(paces) >= PACE_MIN_SAMPLES else None
    failing = {}
    if policy.breaker_failures:
        for resolution in sorted({s.resolution for s in recent}):
            # A call we cut sooner than we now know healthy calls need is no sign of a wave.
            cut = timeout_for(policy, resolution, Regime(pace)) * 0.99 if pace else 0.0
            tail = [s for s in recent if s.resolution == resolution and not (
                s.outcome == "timeout" and s.timeout_s is not None and s.timeout_s < cut)]
            tail = tail[-policy.breaker_failures:]
            if not tail:
                continue
            left = policy.breaker_cooldown_s - (now - tail[-1].ended_s)
            if (len(tail) == policy.breaker_failures and all(s.outcome != "ok" for s in tail)
                    and left > 0):
                failing[resolution] = left
    return Regime(pace, failing)


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


def learned_timeout(resolution: str, latencies: list[float]) -> float | None:
    """A per-attempt timeout from this endpoint's successful calls in the ledger (earlier
    sessions included), or None: the cut at the pace those calls showed (their median over
    the published median), never under the published figures' cut nor over the ceiling.
    It seeds a session's first burst, which starts before the session has seen anything.
    """
    if len(latencies) < LEARN_MIN_SAMPLES:
        return None
    pace = max(1.0, percentile(sorted(latencies), 0.5) / MEDIAN_LATENCY[resolution])
    return min(DEFAULT_TIMEOUTS[resolution], TIMEOUT_MARGIN * PUBLISHED_P99[resolution] * pace)


def decide(policy: RetryPolicy, history: list[Past], now: float, jitter: float = 0.0,
           learned: dict[str, float] | None = None, regime: Regime | None = None) -> Try | Stop:
    """The next step after `history` (oldest first) at time `now` (seconds since job start).
    `learned` maps a resolution to a timeout learned from this endpoint's ledger
    (learned_timeout); `regime` is what the whole session saw lately (see `regime`)."""
    regime = regime or Regime()
    asked, policy = policy, _timed(policy, learned, regime)
    if not history:
        wave = _wave(policy, 0, regime)
        if wave is None:
            return _fit(policy, 0, 0.0, now, "first attempt")
        if now + wave < policy.patience_s:
            return _fit(policy, 0, wave, now, f"{policy.ladder[0].label()} is failing for "
                        f"every job now: wait {wave:.0f} s for it")
        return _fit(policy, _healthy(policy, 1, regime), 0.0, now,
                    f"{policy.ladder[0].label()} is failing for every job now")
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
    slow = _slow(last)
    server_wait = last.retry_after_s
    wave = _wave(policy, rung, regime)

    allowed = policy.attempts.get(resolution, 1)
    if rung == 0 and sum(1 for p in history if p.rung == 0 and _slow(p)) <= 1:
        allowed += asked.quick_extra_tries  # at most one of its failures took long
    stay = tries_here < allowed
    reason = f"retry {policy.ladder[rung].label()}"
    if stay and has_lower and slow and policy.step_down_on_slow_failure:
        stay, reason = False, f"slow failure at {resolution}: step down"
    if stay and has_lower and wave is not None:
        if rung == 0 and now + wave < policy.patience_s:
            reason = f"{resolution} is failing for every job now: wait {wave:.0f} s for it"
        else:
            stay, reason = False, f"{resolution} is failing for every job now: step down"
    if stay and has_lower and server_wait is not None and server_wait > policy.max_server_wait:
        stay, reason = False, f"server asks for {server_wait:.0f} s: step down instead"

    if stay:
        if server_wait is not None:
            wait = server_wait
        elif slow:  # minutes already lost: no backoff on top
            wait = policy.wait_jitter * jitter
        else:
            wait = min(policy.wait_max, _base_wait(policy, resolution) * 2 ** (fails_in_row - 1))
            wait += policy.wait_jitter * jitter
        if wave is not None:
            wait = max(wait, wave)
        elif policy.escalate:  # was our cut too early? a healthy size gets a longer look
            cuts = sum(1 for p in history if p.rung == rung and p.outcome == "timeout")
            longer = min(asked.timeouts[resolution], policy.timeouts[resolution] * 2 ** cuts)
            policy = replace(policy, timeouts={**policy.timeouts, resolution: longer})
        return _fit(policy, rung, wait, now, reason)
    if not has_lower:
        return Stop(f"gave up after {tries_here} attempt(s) at {policy.ladder[rung].label()}")
    # Stepping down: a slow failure already waited long enough; a fast one backs off briefly.
    wait = 0.0 if slow else _base_wait(policy, resolution) + policy.wait_jitter * jitter
    if server_wait is not None and server_wait <= policy.max_server_wait:
        wait = server_wait
    if not reason.startswith(("slow", "server", resolution)):
        reason = f"{tries_here} failure(s) at {policy.ladder[rung].label()}: step down"
    return _fit(policy, _healthy(policy, rung + 1, regime), wait, now, reason)


def timeout_for(policy: RetryPolicy, resolution: str, regime: Regime | None = None,
                learned: float | None = None) -> float:
    """An attempt's timeout: a little over the size's P99 at the service's current pace
    (or what the ledger learned, if longer), never over the policy's ceiling."""
    ceiling = policy.timeouts[resolution]
    if policy.timeout_margin is None or resolution not in PUBLISHED_P99:
        return ceiling if learned is None or not policy.learn_timeouts else min(ceiling, learned)
    pace = regime.pace if regime is not None and regime.pace is not None else policy.unseen_pace
    cut = policy.timeout_margin * PUBLISHED_P99[resolution] * pace
    if learned is not None and policy.learn_timeouts:
        cut = max(cut, learned)
    return min(ceiling, cut)


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
          learned_hedge: dict[str, float] | None = None,
          regime: Regime | None = None) -> Try | None:
    """The hedge for attempt `main` decided at `now`: a try one rung down (or lower, to fit a
    deadline; with `hedge_same_size`, the same rung unless it is in a wave) whose `wait_s`
    counts from the main attempt's start; None when hedging is off, there is no rung to
    hedge with, or the main attempt's timeout comes first. `learned_hedge` (learned_hedge
    per size) can only make the hedge later."""
    if not policy.hedge_after:
        return None
    regime = regime or Regime()
    if policy.hedge_same_size and _wave(policy, main.rung, regime) is None:
        rung = main.rung
    elif main.rung + 1 < len(policy.ladder):
        rung = _healthy(policy, main.rung + 1, regime)
    else:
        return None
    policy = _timed(policy, learned, regime)
    resolution = policy.ladder[main.rung].resolution
    after = policy.hedge_after.get(resolution)
    if after is not None and policy.hedge_same_size:  # at the pace the cut moves with
        after *= regime.pace if regime.pace is not None else policy.unseen_pace
    elif after is not None and learned_hedge and policy.learn_hedge:
        after = max(after, learned_hedge.get(resolution, after))
    if after is None or after >= main.timeout_s:
        return None
    found = _fit(policy, rung, 0.0, now + main.wait_s + after,
                 f"hedge: {resolution} still running after {after:.0f} s")
    return None if isinstance(found, Stop) else replace(found, wait_s=after)


def _timed(policy: RetryPolicy, learned: dict[str, float] | None,
           regime: Regime | None) -> RetryPolicy:
    """The policy with each size's timeout for now (timeout_for)."""
    learned = learned or {}
    return replace(policy, timeouts={r: timeout_for(policy, r, regime, learned.get(r))
                                     for r in policy.timeouts}, timeout_margin=None,
                   learn_timeouts=False)


def _wave(policy: RetryPolicy, rung: int, regime: Regime) -> float | None:
    """Seconds until this rung's size may be probed again, if it is failing for every job
    on this endpoint right now; None when it is not."""
    step = policy.ladder[rung]
    return regime.failing.get(step.resolution) if step.provider is None else None


def _healthy(policy: RetryPolicy, rung: int, regime: Regime) -> int:
    """`rung`, or the first lower rung not in a wave (the last rung if all are)."""
    while rung + 1 < len(policy.ladder) and _wave(policy, rung, regime) is not None:
        rung += 1
    return rung


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


def _slow(past: Past) -> bool:
    """A failure that cost minutes: a cut, or an answer after half the timeout or more."""
    return past.outcome in SLOW_OUTCOMES or past.elapsed_s >= SLOW_FAILURE_SHARE * past.timeout_s


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
