"""The simulator's latency and failure model matches the published figures."""

from __future__ import annotations

import random
import statistics

import pytest

from nbp_jupyter import facts
from nbp_jupyter.sim import model

# docs/facts.md "Latency and success": P50 / P95 / P99 per resolution
PUBLISHED = {r: tuple(q) for r, q in facts.LATENCY.items()}


@pytest.mark.parametrize("resolution", ["1K", "2K", "4K"])
def test_latency_quantiles_match_facts(resolution):
    """Simulated waits have the published P50/P95/P99."""
    rng = random.Random(3)
    draws = sorted(model.latency(resolution, rng.random()) for _ in range(20000))
    q = statistics.quantiles(draws, n=100)
    for got, want in zip((q[49], q[94], q[98]), PUBLISHED[resolution]):
        assert abs(got - want) / want < 0.05


@pytest.mark.parametrize("profile,resolution,rate", [
    ("typical", "1K", 0.96), ("typical", "2K", 0.85), ("typical", "4K", 0.50),
    ("peak", "4K", 0.30), ("ideal", "4K", 1.0), ("outage", "1K", 0.0)])
def test_success_rates_per_profile(profile, resolution, rate):
    """Profiles deliver images at the documented rates."""
    rng = random.Random(11)
    prof = model.PROFILES[profile]
    kinds = [model.draw(prof, resolution, rng).kind for _ in range(4000)]
    delivered = sum(k in ("ok", "thought", "downgrade") for k in kinds) / len(kinds)
    assert abs(delivered - rate) < 0.03


def test_script_parsing_reports_unknown_items():
    """A typo in a script names the bad item and the valid ones."""
    assert model.parse_script("503, 429:2s, hang, ok:150ms") == [
        ("overloaded", None), ("rate_limited", 2.0), ("hang", None), ("ok", 0.15)]
    with pytest.raises(ValueError, match="'oops'.*overloaded"):
        model.parse_script("503, oops")


def _delivered(profile, resolution, t, n=4000, seed=5):
    rng = random.Random(seed)
    kinds = [model.draw(profile, resolution, rng, t).kind for _ in range(n)]
    return sum(k in ("ok", "thought", "downgrade") for k in kinds) / n, kinds


def test_independent_world_fails_the_published_way():
    """The independent world's 4K calls fail half the time: 503 45 %, hang 35 %, 500/429 10 %."""
    rate, kinds = _delivered(model.PROFILES["independent"], "4K", t=0.0, n=8000)
    failed = [k for k in kinds if k not in ("ok", "thought", "downgrade")]
    assert abs(rate - 0.50) < 0.03
    for kind, share in model.INDEPENDENT_MIX.items():
        assert abs(failed.count(kind) / len(failed) - share) < 0.03


@pytest.mark.parametrize("resolution", ["1K", "2K", "4K"])
def test_lognormal_latency_has_the_published_p50_and_p95(resolution):
    """The independent world's healthy calls take the published P50 and P95."""
    rng = random.Random(4)
    draws = sorted(model.latency(resolution, rng.random(), lognormal=True) for _ in range(20000))
    q = statistics.quantiles(draws, n=100)
    for got, want in zip((q[49], q[94]), PUBLISHED[resolution][:2]):
        assert abs(got - want) / want < 0.05


def test_slow_world_is_several_times_slower_for_everyone():
    """In the slow world a healthy 1K call takes ~3.5x the published median (January 2026)."""
    rng = random.Random(8)
    slow = model.PROFILES["slow"]
    delays = [o.delay_s for o in (model.draw(slow, "1K", rng) for _ in range(4000))
              if o.kind == "ok"]
    assert abs(statistics.median(delays) / PUBLISHED["1K"][0] - model.SLOW_FACTOR) < 0.3


def test_outage_world_downs_4k_for_twenty_minutes_only():
    """4K fails every call during the outage and recovers after it; 2K is untouched."""
    world, spell = model.PROFILES["outage4k"], model.OUTAGE_4K
    before, _ = _delivered(world, "4K", spell.start_s - 1)
    during, _ = _delivered(world, "4K", spell.start_s + spell.length_s / 2)
    after, _ = _delivered(world, "4K", spell.start_s + spell.length_s + 1)
    two_k, _ = _delivered(world, "2K", spell.start_s + 10)
    assert spell.length_s == 1200.0 and during == 0.0
    assert abs(before - 0.5) < 0.03 and abs(after - 0.5) < 0.03 and abs(two_k - 0.85) < 0.03


def test_waves_come_back_and_mostly_hang():
    """Overload waves recur: 4K nearly always fails inside one, mostly slowly, and recovers."""
    world, wave = model.PROFILES["waves"], model.WAVE
    inside = wave.start_s + wave.every_s + 60  # the second wave
    rate_in, kinds = _delivered(world, "4K", inside)
    rate_out, _ = _delivered(world, "4K", wave.start_s + wave.length_s + 60)
    slow = sum(k in ("hang", "deadline") for k in kinds) / len(kinds)
    assert rate_in < 0.1 and rate_out > 0.6 and slow > 0.6
