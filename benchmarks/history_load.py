"""Reading the ledger back: `load_history` (two queries in all) against the way it read
before (the job list, then two queries per job), on the same ledger of 2,000 jobs with
attempts and refines, alternating, in one run.

    python benchmarks/history_load.py [--jobs 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nbp_jupyter.records import History, load_history  # noqa: E402
from nbp_jupyter.store import Store  # noqa: E402
from nbp_jupyter.turns import Exchange, Part  # noqa: E402
from nbp_jupyter.types import Attempt, Request  # noqa: E402


def per_job_history(store: Store, *, limit: int | None = None,
                    session: str | None = None) -> History:
    """load_history as it was: the jobs, then each job's attempts and turn, a query each."""
    records = store.jobs(limit=limit, session=session)
    for record in records:
        record["attempts"] = store.attempts(record["id"])
        record.update(store.turn_of(record["id"]))
    return History(records)


def fill(store: Store, jobs: int, prefix: str = "j") -> None:
    """`jobs` jobs in the ledger, in every shape history meets: one to three attempts (the
    last delivered for most), conversations of three turns (a first turn, then refines),
    and every seventh job still without an attempt."""
    for i in range(jobs):
        job_id = f"{prefix}{i:05d}"
        store.begin_job(job_id, Request(prompt=f"a kite, take {i}", size="2K",
                                        provider="gemini"), "m")
        if i % 7 == 6:
            continue
        tries = i % 3 + 1
        for number in range(1, tries + 1):
            store.begin_attempt(job_id, number, "2K", "m", "gemini", 0.0, 0.134)
            ok = number == tries and i % 5 != 4
            turn = Exchange(job_id=job_id, parent=f"{prefix}{i - 1:05d}" if i % 3 else None,
                            number=i % 3 + 1, prompt=f"a kite, take {i}", references=(),
                            model_parts=(Part(text="here"), Part(path=f"/img/{i}.png",
                                                                 mime="image/png")),
                            provider="gemini") if ok else None
            store.end_attempt(job_id, Attempt(
                number=number, resolution="2K", model="m", provider="gemini",
                outcome="ok" if ok else "overloaded", http_status=200 if ok else 503,
                waited_s=float(number), elapsed_s=60.0 + i % 50, billed="yes" if ok else "no",
                cost_usd=0.134 if ok else 0.0, detail="ok" if ok else "overloaded",
                output_image_tokens=1120 if ok else None), turn=turn)


def timed(read, store: Store) -> float:
    began = time.perf_counter()
    read(store, session=store.session)
    return time.perf_counter() - began


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5, help="alternating reads of each way")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nbp-history-") as home:
        with Store(home) as store:
            fill(store, args.jobs)
            if load_history(store) != per_job_history(store):
                raise SystemExit("the two ways read different histories")
            times: dict[str, list[float]] = {"ours": [], "per job": []}
            for _ in range(args.rounds):
                times["ours"].append(timed(load_history, store))
                times["per job"].append(timed(per_job_history, store))
    ours, old = (statistics.median(times[k]) * 1000 for k in ("ours", "per job"))
    print(f"history of {args.jobs} jobs, median of {args.rounds} alternating reads")
    print(f"  load_history (two queries)   {ours:8.1f} ms")
    print(f"  per job (1 + 2 x {args.jobs} queries) {old:8.1f} ms")
    print(f"ratios: ours/per-job {ours / old:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
