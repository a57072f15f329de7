"""The seed articles' ladder replayed on the stand-in's draws, without the network.

A check of benchmarks/standin.py against issue 13's table: each job climbs the seeds' ladder
(docs/facts.md "The seed articles' client policy") on `standin.fate`, calls in sequence and no
queueing, so what it prints is the stand-in's world alone, not any client's overheads.

    python benchmarks/standin_ladder.py --jobs 2000 --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import standin  # noqa: E402 (a sibling script, not a package)

# (size, client timeout s, waits between its tries s): docs/facts.md "The seed articles' ..."
SEEDS_LADDER = (("4K", 660, (60, 120)), ("2K", 180, (30,)), ("1K", 60, (15,)))


def job(seed: int, prompt: str) -> tuple[str | None, float]:
    """(size delivered or None, service seconds from the first call to the image)."""
    elapsed, asked = 0.0, {}
    for size, timeout, waits in SEEDS_LADDER:
        limit = min(timeout, standin.SERVICE_LIMIT_S)  # past 600 s the service answers 504
        for attempt in range(len(waits) + 1):
            drawn = standin.fate(seed, size, prompt, asked.setdefault(size, 0))
            asked[size] += 1
            if drawn.kind == "ok" and drawn.service_s <= limit:
                return size, elapsed + drawn.service_s
            elapsed += limit if drawn.kind in ("ok", "hang") else drawn.service_s
            if attempt < len(waits):
                elapsed += max(waits[attempt], drawn.retry_delay_s)
    return None, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    print("seed  delivered  at 4K   P50 s  P95 s")
    for seed in args.seeds:
        done = [job(seed, f"job {i}") for i in range(args.jobs)]
        times = [t for size, t in done if size]
        cuts = statistics.quantiles(times, n=100)
        at_4k = sum(size == "4K" for size, _ in done) / len(done)
        print(f"{seed:<5} {len(times) / len(done):>8.1%}  {at_4k:>6.1%}"
              f"  {cuts[49]:>6.0f}  {cuts[94]:>5.0f}")


if __name__ == "__main__":
    main()
