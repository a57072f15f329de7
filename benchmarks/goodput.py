"""Reliability goodput: 4K requests under the simulator's typical and peak failure rates.

Every policy meets the same seeded failure sequence: the simulator keys each outcome on
(seed, prompt, size, how many times it saw that prompt at that size), so the k-th 4K try of
prompt i fails or succeeds the same way whichever policy sends it.

    python benchmarks/goodput.py                # 200 requests, concurrency 20
    python benchmarks/goodput.py --requests 20  # quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbp_jupyter as nbp  # noqa: E402
from nbp_jupyter import jobs, sim  # noqa: E402
from nbp_jupyter.policy import HEDGE_AFTER, RetryPolicy, Rung, build_ladder, percentile  # noqa: E402

ALL = ("1K", "2K", "4K")


def policies(deadline: float) -> dict[str, RetryPolicy]:
    ladder = build_ladder("4K", True)
    return {
        # ours, as shipped
        "ours": RetryPolicy(ladder=ladder),
        # ours with a whole-job deadline of a few minutes
        f"ours+deadline {deadline:.0f}s": RetryPolicy(ladder=ladder, deadline=deadline),
        # ours with hedging at the published P99 (opt-in)
        "ours+hedge": RetryPolicy(ladder=ladder, hedge_after=dict(HEDGE_AFTER)),
        # ours with a second endpoint (a gateway, its own failures) as the step after 4K
        "ours+gateway 4K": RetryPolicy(ladder=build_ladder("4K", "openai:4K, 2K, 1K")),
        # [seed 1]: 4K 3 tries at 660 s, 60 s doubling; 2K 2 tries at 180 s, 30 s; 1K 2 at 60 s, 15 s
        "seeds": RetryPolicy(ladder=ladder, attempts={"4K": 3, "2K": 2, "1K": 2},
                             timeouts={"4K": 660.0, "2K": 180.0, "1K": 60.0},
                             wait_initial={"4K": 60.0, "2K": 30.0, "1K": 15.0},
                             wait_jitter=0.0, wait_max=1e9, max_server_wait=1e9,
                             step_down_on_slow_failure=False, learn_timeouts=False),
        # openai-python's defaults: 2 retries, min(0.5 * 2^n, 8) s + jitter, 600 s timeout
        "sdk-style": RetryPolicy(ladder=(Rung("4K"),), attempts={r: 3 for r in ALL},
                                 timeouts={r: 600.0 for r in ALL}, wait_initial=0.5,
                                 wait_max=8.0, wait_jitter=0.25, max_server_wait=60.0,
                                 learn_timeouts=False),
        "no retries": RetryPolicy(ladder=(Rung("4K"),), attempts={r: 1 for r in ALL},
                                  timeouts={r: 600.0 for r in ALL}, learn_timeouts=False),
    }


def run(profile: str, name: str, policy: RetryPolicy, args, home: Path) -> dict:
    # the gateway is another service under the same load, failing on its own (another seed)
    with sim.start(profile=profile, time_scale=args.time_scale, seed=args.seed) as server, \
            sim.start(profile=profile, time_scale=args.time_scale, seed=args.seed + 1) as gateway:
        os.environ.update(OPENAI_API_KEY="bench", NBP_OPENAI_BASE_URL=gateway.url)
        started = time.monotonic()
        handles = [nbp.submit(f"benchmark scene {i}", size="4K", provider="gemini",
                              base_url=server.url, api_key="bench", time_scale=args.time_scale,
                              policy=policy, max_concurrency=args.concurrency,
                              home=home / f"{profile}-{name}")
                   for i in range(args.requests)]
        results = [h.result() for h in handles]
        wall = time.monotonic() - started
    delivered = [r for r in results if r.success]
    times = sorted(r.elapsed_s for r in delivered)
    calls = sum(len(r.attempts) for r in results)
    n = max(len(delivered), 1)
    return {
        "policy": name, "delivered %": 100 * len(delivered) / len(results),
        "at 4K %": 100 * sum(r.resolution == "4K" for r in delivered) / len(results),
        "median s": statistics.median(times) if times else float("nan"),
        "P95 s": percentile(times, 0.95) if times else float("nan"),
        "calls/img": calls / n,
        "$ billed/img": sum(r.cost_usd for r in results) / n,
        "$ unknown/img": sum(r.cost_unknown_usd for r in results) / n,
        "wall s": wall,
    }


def _cost(row: dict) -> float:
    """Billed plus unknown cost per delivered image: the upper bound of what an image costs."""
    return row["$ billed/img"] + row["$ unknown/img"]


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = ["  ".join(f"{c:>16}" if i else f"{c:<22}" for i, c in enumerate(cols))]
    for row in rows:
        out.append("  ".join(
            (f"{v:>16.3f}" if isinstance(v, float) and "$" in c else
             f"{v:>16.1f}" if isinstance(v, float) else f"{str(v):<22}")
            for c, v in row.items()))
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--time-scale", type=float, default=0.005,
                   help="real seconds per simulated second (default 0.005)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--deadline", type=float, default=480.0)
    p.add_argument("--profiles", default="typical,peak")
    args = p.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="nbp-bench-"))
    ratios = []
    for profile in args.profiles.split(","):
        rows = [run(profile, name, pol, args, home) for name, pol in policies(args.deadline).items()]
        print(f"\n{profile} profile: {args.requests} x 4K, concurrency {args.concurrency}, "
              f"time scale {args.time_scale} (times in simulated seconds)")
        print(table(rows))
        by = {row["policy"]: row for row in rows}
        ours, seeds = by["ours"], by["seeds"]
        hedge, gateway = by["ours+hedge"], by["ours+gateway 4K"]
        ratios.append(
            f"{profile}: delivered ours/seeds {ours['delivered %'] / max(seeds['delivered %'], 1e-9):.2f}, "
            f"P95 ours/seeds {ours['P95 s'] / seeds['P95 s']:.2f}, "
            f"cost/img ours/seeds {_cost(ours) / max(_cost(seeds), 1e-9):.2f}, "
            f"P95 hedge/ours {hedge['P95 s'] / ours['P95 s']:.2f}, "
            f"cost/img hedge/ours {_cost(hedge) / max(_cost(ours), 1e-9):.2f}, "
            f"at 4K gateway/ours {gateway['at 4K %'] / max(ours['at 4K %'], 1e-9):.2f}")
    jobs.reset_session()
    print("\nratios: " + "; ".join(ratios))
    return 0


if __name__ == "__main__":
    sys.exit(main())
