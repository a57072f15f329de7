"""What a click will cost and how long it will take, before it is made.

Expected calls per delivered image = 1 / success rate (docs/facts.md "Latency and success":
100 images at 4K / 50 % is about 200 calls). The rate is what this machine has seen for the
model and size once it has MIN_ATTEMPTS attempts, the published figure before that.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import facts, pricing
from .records import expected_latency
from .store import Store
from .timefmt import clock

PUBLISHED_SUCCESS = facts.TYPICAL_SUCCESS  # docs/facts.md "Latency and success"
MIN_ATTEMPTS = facts.MIN_SAMPLES


@dataclass(frozen=True)
class Estimate:
    images: int
    success_rate: float
    from_history: bool
    calls_per_image: float
    cost_usd: float  # billed: failed calls are not billed
    seconds: float  # expected wait for one image (service seconds)

    def line(self) -> str:
        source = "seen here" if self.from_history else "published"
        return (f"{self.images} image{'s' if self.images != 1 else ''}: ~${self.cost_usd:.2f}, "
                f"~{clock(self.seconds)} each, ~{self.calls_per_image:.1f} calls per image "
                f"(success {self.success_rate:.0%}, {source})")


def estimate(store: Store, model: str, size: str, images: int) -> Estimate:
    ok, total = store.success_counts(model, size)
    from_history = total >= MIN_ATTEMPTS
    rate = ok / total if from_history else PUBLISHED_SUCCESS[size]
    rate = max(rate, 0.01)
    calls = 1.0 / rate
    p50, _ = expected_latency(store, model, size)
    return Estimate(images=images, success_rate=rate, from_history=from_history,
                    calls_per_image=calls, cost_usd=pricing.image_price(model, size) * images,
                    seconds=p50 * calls)


def budget_warning(budget: float | None, billed: float, unknown: float,
                   est: Estimate) -> str | None:
    """A sentence when this click could take spending past the budget, else None. Spending
    is what the panel's footer shows: billed, plus unknown (calls that may have been billed)."""
    if budget is None or billed + unknown + est.cost_usd <= budget:
        return None
    return (f"This click may cost ~${est.cost_usd:.2f}; this session has billed ${billed:.3f}"
            f" and up to ${unknown:.3f} unknown, so it would pass your ${budget:.2f} budget.")
