"""The one percentile the policy, the status line's expectations and the benchmarks share."""

from __future__ import annotations


def percentile(ordered: list[float], q: float) -> float:
    """The q-quantile (0..1) of an already sorted, non-empty list, nearest rank below."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
