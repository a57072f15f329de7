"""The simulator's latency and failure model matches the published figures."""

from __future__ import annotations

import random
import statistics

import pytest

from nbp_jupyter.sim import model

# [seed] latency P50 / P95 / P99 per resolution
PUBLISHED = {"1K": (45, 90, 150), "2K": (65, 120, 180), "4K": (120, 170, 250)}


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
