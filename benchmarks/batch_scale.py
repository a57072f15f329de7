"""Batch vs interactive: N prompts at 2K through the Batch API, and the same N as interactive
calls at concurrency 8, on the simulator's `typical` profile, in the same run.

    python benchmarks/batch_scale.py [--prompts 500] [--time-scale 0.002]

Reports time to all results (simulated seconds: the service's part scaled back to real
speed, plus the client's own collecting time, which is real at any scale), cost per
delivered image, HTTP calls, and unknown cost. The batch turnaround is the simulator's
assumption (docs/facts.md "Batch API": Google publishes only a 24-hour target), so the time
column compares our model of the service, not a measurement of it; the cost column follows
the published prices.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import print_table

import nbp_jupyter as nbp
from nbp_jupyter import jobs, sim


def interactive(url: str, prompts: list[str], scale: float, home: Path) -> dict:
    started = time.monotonic()
    handles = [nbp.submit(p, size="2K", provider="gemini", base_url=url, api_key="bench",
                          time_scale=scale, home=home, max_concurrency=8) for p in prompts]
    results = [h.result() for h in handles]
    took = (time.monotonic() - started) / scale
    images = [r for r in results if r.success]
    return {"way": "interactive, concurrency 8", "time_s": took,
            "images": len(images), "at_2k": sum(r.resolution == "2K" for r in images),
            "cost_per_image": sum(r.cost_usd for r in results) / max(1, len(images)),
            "calls": sum(len(r.attempts) for r in results),
            "unknown_usd": sum(r.cost_unknown_usd for r in results)}


def batched(server, prompts: list[str], scale: float, home: Path) -> dict:
    seen: dict[str, float] = {}
    started = time.monotonic()
    job = nbp.batch(prompts, size="2K", provider="gemini", base_url=server.url,
                    api_key="bench", time_scale=scale, home=home)
    job.add_listener(lambda j: seen.setdefault(j.state, time.monotonic()))
    job.wait()
    ended = time.monotonic()
    service = (seen.get("collecting", ended) - started) / scale
    collect = ended - seen.get("collecting", ended)
    results = job.results()
    images = [r for r in results if r.success]
    return {"way": "batch", "time_s": service + collect, "collect_real_s": collect,
            "images": len(images), "at_2k": sum(r.resolution == "2K" for r in images),
            "cost_per_image": job.cost_usd / max(1, len(images)),
            "calls": len(server.app.batches.log), "unknown_usd": 0.0, "state": job.state}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=500)
    p.add_argument("--time-scale", type=float, default=0.002)
    args = p.parse_args(argv)
    prompts = [f"product shot {i}, studio light" for i in range(args.prompts)]
    home = Path(tempfile.mkdtemp(prefix="nbp-batch-scale-"))
    with sim.start(profile="typical", time_scale=args.time_scale, seed=7) as server:
        server.app.batches.stamp_prompts = False  # the client's work, not the renderer's
        rows = [interactive(server.url, prompts, args.time_scale, home / "interactive"),
                batched(server, prompts, args.time_scale, home / "batch")]
    jobs.reset_session()
    print_table(["way", "time to all results (sim s)", "images", "at 2K", "$/image", "calls",
                 "unknown $"],
                [[r["way"], round(r["time_s"]), r["images"], r["at_2k"],
                  round(r["cost_per_image"], 4), r["calls"], round(r["unknown_usd"], 3)]
                 for r in rows])
    inter, batch = rows
    print(f"batch: collecting took {batch['collect_real_s']:.1f} s of real client time "
          f"(included above); state {batch['state']}")
    print(f"ratios: batch/interactive cost per image "
          f"{batch['cost_per_image'] / max(inter['cost_per_image'], 1e-9):.2f}, "
          f"time {batch['time_s'] / max(inter['time_s'], 1e-9):.2f}, "
          f"calls {batch['calls'] / max(inter['calls'], 1):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
