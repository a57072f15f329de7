"""Reliability goodput: 4K requests in each world the retry policy is measured in.

A world is a simulator profile (docs/facts.md, "Worlds the policy is measured in"):
independent failures, the typical and peak rates, overload waves, everyone slow, and 4K
down for 20 minutes; or `standin`, an independent stand-in for the service written from the
published figures alone (benchmarks/standin.py), which keys its fates the same way. Every policy meets the same seeded failure sequence: the simulator keys
each outcome on (seed, prompt, size, how many times it saw that prompt at that size), so the
k-th 4K try of prompt i fails or succeeds the same way whichever policy sends it (in waves
and outages, also on when it is sent).

    python benchmarks/goodput.py                      # every world, 200 requests, concurrency 20
    python benchmarks/goodput.py --world independent --requests 60 --concurrency 4
    python benchmarks/goodput.py --policies all       # also the deadline, gateway, SDK-style...
    python benchmarks/goodput.py --standin            # issue 13's: the stand-in, 60 x 4K, 4 at a time
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # standin.py

import nbp_jupyter as nbp  # noqa: E402
from nbp_jupyter import facts, jobs, sim  # noqa: E402
from nbp_jupyter.policy import SAME_SIZE_HEDGE_AFTER, RetryPolicy, Rung, build_ladder  # noqa: E402
from nbp_jupyter.stats import percentile  # noqa: E402

ALL = ("1K", "2K", "4K")
WORLDS = ("independent", "typical", "peak", "waves", "slow", "outage4k")
# Issue 13's own measurement: an independent stand-in (benchmarks/standin.py, not our
# simulator), 60 jobs for 4K, 4 at a time.
STANDIN = "standin"
ISSUE_SCENARIO = {"requests": 60, "concurrency": 4}
CORE = ("ours", "ours+hedge", "seeds")


def policies(deadline: float) -> dict[str, RetryPolicy]:
    ladder = build_ladder("4K", True)
    return {
        # ours, as shipped
        "ours": RetryPolicy(ladder=ladder),
        # ours with a whole-job deadline of a few minutes
        f"ours+deadline {deadline:.0f}s": RetryPolicy(ladder=ladder, deadline=deadline),
        # ours with hedge=True (opt-in): the same size at P95 x pace while it is healthy
        "ours+hedge": RetryPolicy(ladder=ladder, hedge_after=dict(SAME_SIZE_HEDGE_AFTER),
                                  hedge_same_size=True),
        # ours with a second endpoint (a gateway, its own failures) as the step after 4K
        "ours+gateway 4K": RetryPolicy(ladder=build_ladder("4K", "openai:4K, 2K, 1K")),
        # docs/facts.md "The seed articles' client policy": 4K 3 tries at 660 s, 60 s
        # doubling; 2K 2 tries at 180 s, 30 s; 1K 2 at 60 s, 15 s
        "seeds": RetryPolicy(ladder=ladder, attempts=dict(facts.SEED_TRIES),
                             timeouts=dict(facts.SEED_TIMEOUTS),
                             wait_initial=dict(facts.SEED_FIRST_WAIT_S),
                             wait_jitter=0.0, wait_max=1e9, max_server_wait=1e9,
                             step_down_on_slow_failure=False, learn_timeouts=False,
                             timeout_margin=None, breaker_failures=None,
                             quick_extra_tries=0),
        # openai-python's defaults: 2 retries, min(0.5 * 2^n, 8) s + jitter, 600 s timeout
        "sdk-style": RetryPolicy(ladder=(Rung("4K"),), attempts={r: 3 for r in ALL},
                                 timeouts={r: 600.0 for r in ALL}, wait_initial=0.5,
                                 wait_max=8.0, wait_jitter=0.25, max_server_wait=60.0,
                                 learn_timeouts=False, timeout_margin=None,
                                 breaker_failures=None, quick_extra_tries=0),
        "no retries": RetryPolicy(ladder=(Rung("4K"),), attempts={r: 1 for r in ALL},
                                  timeouts={r: 600.0 for r in ALL}, learn_timeouts=False,
                                  timeout_margin=None, breaker_failures=None,
                                  quick_extra_tries=0),
    }


@contextlib.contextmanager
def service(world: str, seed: int, time_scale: float) -> Iterator[str]:
    """The base URL of a fresh service for `world`: a simulator profile, or (world
    "standin") benchmarks/standin.py, written from the published figures alone."""
    if world == STANDIN:
        import standin  # benchmarks/standin.py, next to this file
        with standin.start(seed=seed, time_scale=time_scale) as server:
            yield server.base_url
    else:
        with sim.start(profile=world, time_scale=time_scale, seed=seed) as server:
            yield server.url


def run(profile: str, name: str, policy: RetryPolicy, args, home: Path) -> dict:
    # the gateway is another service under the same load, failing on its own (another seed)
    with service(profile, args.seed, args.time_scale) as url, \
            service(profile, args.seed + 1, args.time_scale) as gateway:
        os.environ.update(OPENAI_API_KEY="bench", NBP_OPENAI_BASE_URL=gateway)
        started = time.monotonic()
        handles = [nbp.submit(f"benchmark scene {i}", size="4K", provider="gemini",
                              base_url=url, api_key="bench", time_scale=args.time_scale,
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
    p.add_argument("--requests", type=int, help="default 200 (60 with --standin)")
    p.add_argument("--concurrency", type=int, help="default 20 (4 with --standin)")
    p.add_argument("--time-scale", type=float, default=0.01,
                   help="real seconds per simulated second (default 0.01; at 0.005 a loaded "
                        "machine stretches healthy calls past the 250 s cut)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--deadline", type=float, default=480.0)
    p.add_argument("--world", "--profiles", dest="world",
                   help=f"comma-separated simulator profiles or {STANDIN!r} "
                        f"(default: {','.join(WORLDS)})")
    p.add_argument("--policies", default=",".join(CORE),
                   help=f"comma-separated policy names, or 'all' (default: {','.join(CORE)})")
    p.add_argument("--standin", action="store_true",
                   help="issue 13's scenario: the independent stand-in (benchmarks/standin.py), "
                        "60 requests, concurrency 4 (--world, --requests, --concurrency still "
                        "apply)")
    args = p.parse_args(argv)
    defaults = ISSUE_SCENARIO if args.standin else {"requests": 200, "concurrency": 20}
    args.world = args.world or (STANDIN if args.standin else ",".join(WORLDS))
    for option, value in defaults.items():
        if getattr(args, option) is None:
            setattr(args, option, value)
    home = Path(tempfile.mkdtemp(prefix="nbp-bench-"))
    known = policies(args.deadline)
    names = list(known) if args.policies == "all" else args.policies.split(",")
    names += [n for n in ("ours", "seeds") if n not in names]  # the ratios compare these two
    ratios = []
    for world in args.world.split(","):
        rows = [run(world, name, known[name], args, home) for name in names]
        print(f"\n{world} world: {args.requests} x 4K, concurrency {args.concurrency}, "
              f"time scale {args.time_scale}, seed {args.seed} (times in simulated seconds)")
        print(table(rows))
        ratios.append(f"{world}: " + ratio_line({row["policy"]: row for row in rows}))
    jobs.reset_session()
    print("\nratios: " + "; ".join(ratios))
    return 0


def ratio_line(by: dict[str, dict]) -> str:
    """Ours against the seeds' policy (and hedging or a gateway against ours, if run)."""
    ours, seeds = by["ours"], by["seeds"]
    parts = [f"delivered ours/seeds {ours['delivered %'] / max(seeds['delivered %'], 1e-9):.2f}",
             f"at 4K ours-seeds {ours['at 4K %'] - seeds['at 4K %']:+.1f} pts",
             f"P95 ours/seeds {ours['P95 s'] / seeds['P95 s']:.2f}",
             f"cost/img ours/seeds {_cost(ours) / max(_cost(seeds), 1e-9):.2f}"]
    if "ours+hedge" in by:
        hedge = by["ours+hedge"]
        parts += [f"P95 hedge/seeds {hedge['P95 s'] / seeds['P95 s']:.2f}",
                  f"cost/img hedge/seeds {_cost(hedge) / max(_cost(seeds), 1e-9):.2f}"]
    if "ours+gateway 4K" in by:
        gateway = by["ours+gateway 4K"]
        parts.append(f"at 4K gateway/ours {gateway['at 4K %'] / max(ours['at 4K %'], 1e-9):.2f}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
