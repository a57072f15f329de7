"""What the simulated service does with a request: how long it takes and how it fails.

Latency is drawn from a piecewise-linear quantile function through the published figures
(generation-time floor, P50, P95, P99 and the 600 s server limit; docs/facts.md), so the
simulated P50/P95/P99 match the published ones. Failures follow per-profile success rates
(1K > 95 %, 2K ~ 85 %, 4K < 50 %; 4K ~ 30 % at peak) and a failure mix.
Every draw comes from a Random seeded with (seed, request identity, how many times that
identity was seen), so the same seed replays the same outcomes whatever the concurrency.

Profiles are the worlds a retry policy is measured in (docs/facts.md, "Worlds the policy is
measured in"): most draw every call independently; `waves` and `outage4k` also depend on
the simulated time since the server started, so failures come in correlated stretches.
"""

from __future__ import annotations

import bisect
import math
import random
import re
import statistics
from dataclasses import dataclass

from .. import facts

# Quantile knots (probability, seconds) per resolution: the published P50/P95/P99 and the
# shortest reported times (docs/facts.md "Latency and success"); the tail ends at 200 s
# (1K), 300 s (2K) and the 600 s server-side limit (4K).
_TAIL_S = {"1K": 200.0, "2K": 300.0, "4K": facts.SERVER_LIMIT_S}
LATENCY_KNOTS: dict[str, tuple[tuple[float, float], ...]] = {
    r: ((0.0, facts.GENERATION_FLOOR_S[r]), (0.5, q.p50), (0.95, q.p95), (0.99, q.p99),
        (1.0, _TAIL_S[r])) for r, q in facts.LATENCY.items()}
SERVER_LIMIT_S = facts.SERVER_LIMIT_S
_Z95 = statistics.NormalDist().inv_cdf(0.95)
IDEAL_LATENCY_S = {"1K": 5.0, "2K": 10.0, "4K": 20.0}

KINDS = (
    "ok", "overloaded", "rate_limited", "server_error", "deadline", "hang", "disconnect",
    "truncated", "html200", "html502", "safety", "no_image", "prompt_blocked",
    "downgrade", "thought", "drip",
)
ALIASES = {"503": "overloaded", "429": "rate_limited", "500": "server_error",
           "504": "deadline", "502": "html502", "200html": "html200", "blocked": "prompt_blocked"}

# How failures split when a request fails (weights; they need not sum to 1).
FAILURE_MIX: dict[str, float] = {
    "overloaded": 0.30, "rate_limited": 0.10, "server_error": 0.08, "deadline": 0.12,
    "hang": 0.12, "disconnect": 0.06, "truncated": 0.02, "html502": 0.05, "html200": 0.01,
    "safety": 0.02, "no_image": 0.03, "drip": 0.03,
}


@dataclass(frozen=True)
class Spell:
    """A stretch of simulated time (seconds since the server started) when calls at some
    sizes succeed at other rates and fail another way: an overload wave or an outage."""

    start_s: float
    length_s: float
    success: dict[str, float]  # sizes not named keep the profile's rate
    mix: dict[str, float]
    every_s: float | None = None  # repeats with this period; None: once

    def covers(self, t: float) -> bool:
        if t < self.start_s:
            return False
        since = t - self.start_s
        if self.every_s is not None:
            since %= self.every_s
        return since < self.length_s


@dataclass(frozen=True)
class Profile:
    name: str
    success: dict[str, float]
    latency_factor: float = 1.0
    downgrade: float = 0.0  # share of 4K successes silently delivered at 2K
    thought: float = 0.0  # share of successes that carry a draft `thought` image first
    fixed_latency: bool = False
    description: str = ""
    mix: dict[str, float] | None = None  # None: FAILURE_MIX
    lognormal: bool = False  # latency lognormal through the published P50/P95, not the knots
    spell: Spell | None = None


# ----- The worlds' parameters, in one place (docs/facts.md "Worlds the policy is measured in").
PUBLISHED_SUCCESS = dict(facts.TYPICAL_SUCCESS)
# Issue 13's independent stand-in: how a failed call fails.
INDEPENDENT_MIX = {"overloaded": 0.45, "hang": 0.35, "server_error": 0.10, "rate_limited": 0.10}
# January 2026: healthy calls 3-4x slower for everyone (20-40 s became 180 s+); the middle.
SLOW_FACTOR = sum(facts.SLOWDOWN_FACTOR_2026_01) / 2
# Overload waves: the hourly swing of 4K success (30 % to 70 %) compressed into a 40-minute
# cycle so a benchmark run meets one or two waves: 12 minutes in which 4K mostly hangs or is
# cut at the server's limit, 28 minutes of 4K at 65 % (on average 47 %, like the published < 50 %).
WAVE = Spell(start_s=300.0, length_s=720.0, every_s=2400.0,
             success={"1K": 0.90, "2K": 0.60, "4K": 0.05},
             mix={"overloaded": 0.30, "deadline": 0.30, "hang": 0.40})
WAVE_CALM_SUCCESS = {"1K": 0.96, "2K": 0.88, "4K": 0.65}
# 4K down hard for 20 minutes, five minutes into the session (a 503 storm takes 30-120 min
# to clear by one public account); 1K and 2K unaffected.
OUTAGE_4K = Spell(start_s=300.0, length_s=1200.0, success={"4K": 0.0}, mix=INDEPENDENT_MIX)


PROFILES: dict[str, Profile] = {
    "ideal": Profile("ideal", {"1K": 1.0, "2K": 1.0, "4K": 1.0}, fixed_latency=True,
                     description="no failures; fixed latency 1K 5 s, 2K 10 s, 4K 20 s"),
    "typical": Profile("typical", {"1K": 0.96, "2K": 0.85, "4K": 0.50}, downgrade=0.06,
                       thought=0.2, description="success 1K 96 %, 2K 85 %, 4K 50 %; every call on its "
                                               "own, failures mixed as below"),
    "peak": Profile("peak", {"1K": 0.93, "2K": 0.70, "4K": 0.30}, latency_factor=1.3,
                    downgrade=0.1, thought=0.2,
                    description="success 1K 93 %, 2K 70 %, 4K 30 % (00-08 Beijing time); "
                                "latency x1.3"),
    "outage": Profile("outage", {"1K": 0.0, "2K": 0.0, "4K": 0.0},
                      description="every request gets 503 overloaded"),
    "independent": Profile(
        "independent", dict(PUBLISHED_SUCCESS), mix=INDEPENDENT_MIX, lognormal=True,
        description="each call drawn on its own: success 1K 95 %, 2K 85 %, 4K 50 %; failures "
                    "503 45 %, hang 35 %, 500 10 %, 429 10 %; lognormal latency"),
    "slow": Profile(
        "slow", dict(PUBLISHED_SUCCESS), mix=INDEPENDENT_MIX, lognormal=True,
        latency_factor=SLOW_FACTOR,
        description=f"as independent, every healthy call x{SLOW_FACTOR:g} slower "
                    "(January 2026)"),
    "waves": Profile(
        "waves", dict(WAVE_CALM_SUCCESS), spell=WAVE,
        description="overload waves: 12 of every 40 minutes (from minute 5) 4K succeeds 5 % "
                    "and mostly hangs or hits the 600 s limit; 65 % between waves"),
    "outage4k": Profile(
        "outage4k", dict(PUBLISHED_SUCCESS), mix=INDEPENDENT_MIX, lognormal=True,
        spell=OUTAGE_4K,
        description="as independent, but 4K fails every call from minute 5 to minute 25"),
}


@dataclass(frozen=True)
class Outcome:
    """One request's fate. `delay_s` is simulated seconds before the server answers."""

    kind: str
    delay_s: float
    retry_after_s: float | None = None  # for rate_limited

    def label(self) -> str:
        return self.kind if self.retry_after_s is None else f"{self.kind}:{self.retry_after_s:g}s"


def latency(resolution: str, u: float, factor: float = 1.0, lognormal: bool = False) -> float:
    """Seconds at quantile u of the resolution's latency distribution."""
    if lognormal:  # through the published P50 and P95 (the knots' 0.5 and 0.95)
        p50, p95 = dict(LATENCY_KNOTS[resolution])[0.5], dict(LATENCY_KNOTS[resolution])[0.95]
        z = statistics.NormalDist().inv_cdf(min(max(u, 1e-9), 1 - 1e-9))
        return min(p50 * math.exp(z * math.log(p95 / p50) / _Z95) * factor, SERVER_LIMIT_S)
    knots = LATENCY_KNOTS[resolution]
    probs = [p for p, _ in knots]
    i = max(1, bisect.bisect_left(probs, u))
    (p0, s0), (p1, s1) = knots[i - 1], knots[i]
    value = s0 + (s1 - s0) * (u - p0) / (p1 - p0)
    return min(value * factor, SERVER_LIMIT_S)


def delay_for(kind: str, resolution: str, rng: random.Random, profile: Profile) -> float:
    """When the server answers with this kind of outcome, in simulated seconds."""
    if profile.fixed_latency:
        return IDEAL_LATENCY_S[resolution]
    full = latency(resolution, rng.random(), profile.latency_factor, profile.lognormal)
    if kind in ("overloaded", "html200", "prompt_blocked"):
        return rng.uniform(1.0, 5.0)  # rejected at the door
    if kind == "rate_limited":
        return rng.uniform(0.2, 1.0)
    if kind == "server_error":
        return full * rng.uniform(0.2, 1.0)
    if kind == "deadline":
        return SERVER_LIMIT_S
    if kind == "html502":
        return rng.uniform(60.0, 100.0)  # a proxy's idle cut: nginx/ALB 60 s, Cloudflare 100 s
    if kind == "drip":
        return 1.0
    return full


def draw(profile: Profile, resolution: str, rng: random.Random, t: float = 0.0) -> Outcome:
    """Pick an outcome for one request under a profile, `t` simulated seconds after the
    server started."""
    if profile.name == "outage":
        return Outcome("overloaded", rng.uniform(1.0, 5.0))
    success, mix = profile.success[resolution], profile.mix or FAILURE_MIX
    if profile.spell is not None and profile.spell.covers(t):
        success = profile.spell.success.get(resolution, success)
        mix = profile.spell.mix
    if rng.random() < success:
        kind = "ok"
        if resolution == "4K" and rng.random() < profile.downgrade:
            kind = "downgrade"
        elif rng.random() < profile.thought:
            kind = "thought"
    else:
        kinds = list(mix)
        kind = rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
    retry = float(rng.randint(5, 60)) if kind == "rate_limited" else None
    return Outcome(kind, delay_for(kind, resolution, rng, profile), retry)


_TOKEN = re.compile(r"^([a-z0-9_]+)(?::(\d+(?:\.\d+)?)(ms|s)?)?$")


def parse_script(script: str | list[str] | tuple[str, ...] | None) -> list[tuple[str, float | None]]:
    """'503, 429:2s, hang, ok' -> [(kind, seconds-or-None), ...].

    The number after a colon is the retry delay for 429 and the answer delay otherwise.
    """
    if not script:
        return []
    items = script.split(",") if isinstance(script, str) else list(script)
    parsed = []
    for raw in items:
        token = raw.strip().lower()
        if not token:
            continue
        m = _TOKEN.match(token)
        kind = ALIASES.get(m.group(1), m.group(1)) if m else None
        if kind not in KINDS:
            raise ValueError(f"unknown script item {raw.strip()!r}: use {', '.join(KINDS)} "
                             "(or 503, 429, 500, 502, 504), optionally with ':SECONDS'")
        seconds = None
        if m.group(2):
            seconds = float(m.group(2)) / (1000.0 if m.group(3) == "ms" else 1.0)
        parsed.append((kind, seconds))
    return parsed


def scripted(kind: str, seconds: float | None, resolution: str, rng: random.Random,
             profile: Profile) -> Outcome:
    """The Outcome for one script item, filling in the delays it leaves open."""
    if kind == "rate_limited":
        return Outcome(kind, delay_for(kind, resolution, rng, profile),
                       seconds if seconds is not None else 30.0)
    delay = seconds if seconds is not None else delay_for(kind, resolution, rng, profile)
    return Outcome(kind, delay)


def failure_help() -> str:
    """The profile table and failure mix, for --help."""
    lines = ["profiles:"]
    lines += [f"  {p.name:8} {p.description}" for p in PROFILES.values()]
    total = sum(FAILURE_MIX.values())
    mix = ", ".join(f"{k} {v / total:.0%}" for k, v in FAILURE_MIX.items())
    lines.append(f"failure mix of typical/peak/waves (share of failed requests): {mix}")
    lines.append("typical/peak also downgrade some 4K successes to 2K and prefix some "
                 "answers with a `thought` draft image.")
    return "\n".join(lines)
