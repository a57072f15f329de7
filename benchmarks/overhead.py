"""Client overhead: nbp_jupyter.agenerate vs a bare httpx post + base64 decode + file write.

Both fetch the same realistic-size bodies (a 4K PNG of ~16 MB, ~22 MB of JSON) from the same
simulator process at the `ideal` profile with latency scaled to ~nothing, so the difference
is what our checks, ledger and atomic write cost. Rounds alternate to share the machine's
noise; `--runs` repeats the whole measurement to show its spread. With `--phases`, a last
pass times where each millisecond of one of our 1K calls goes (work inside each step, and
the hand-offs between threads and loops in between).

    python benchmarks/overhead.py [--rounds 8] [--runs 3] [--phases]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import statistics
import tempfile
import time
from pathlib import Path

from _common import median, print_table, sim_process

import nbp_jupyter as nbp
from nbp_jupyter import checks, engine, jobs
from nbp_jupyter.store import Store

SCALE = 0.0001  # ideal latency 5-20 s plays in 0.5-2 ms


async def raw_call(client, url: str, size: str, out: Path) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "overhead"}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                 "imageConfig": {"aspectRatio": "1:1", "imageSize": size}}}
    response = await client.post(f"{url}/v1beta/models/gemini-3-pro-image-preview:generateContent",
                                 json=body, headers={"x-goog-api-key": "bench"})
    parts = response.json()["candidates"][0]["content"]["parts"]
    data = base64.b64decode(next(p["inlineData"]["data"] for p in parts if "inlineData" in p))
    out.write_bytes(data)


def ours_call(url: str, size: str, home: Path):
    return nbp.agenerate("overhead", size=size, provider="gemini", base_url=url,
                         api_key="bench", time_scale=1.0, home=home)


async def measure(url: str, size: str, rounds: int, home: Path) -> tuple[list[float], list[float]]:
    import httpx
    ours, raw = [], []
    async with httpx.AsyncClient(timeout=120) as client:
        await raw_call(client, url, size, home / "warm.png")  # warm both paths
        await ours_call(url, size, home)
        for i in range(rounds):
            start = time.perf_counter()
            await raw_call(client, url, size, home / f"raw-{i}.png")
            raw.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = await ours_call(url, size, home)
            ours.append(time.perf_counter() - start)
            assert result.success, result.error
    return ours, raw


# ----- where the time goes -----------------------------------------------------------------
STEPS = [  # (where, name, what runs there); in that order, one after the other
    (Store, "begin_job", "ledger: job row (worker thread)"),
    (Store, "begin_attempt", "ledger: attempt row (worker thread)"),
    (engine, "_receive", "HTTP exchange, streaming decode to file (engine loop)"),
    (checks, "settle", "parse skeleton, check header + verify, keep (one worker hop)"),
    (Store, "finish_job", "ledger: job finished (engine loop)"),
]
INSIDE = [(checks, "check", "  of which: header + verify from disk"),
          (engine, "_keep", "  of which: rename into place + ledger row")]


def instrument(marks: list[tuple[str, float, float]]) -> None:
    """Wrap each step so that it records when it started and ended."""
    for owner, name, _ in STEPS + INSIDE:
        original = getattr(owner, name)
        if asyncio.iscoroutinefunction(original):
            async def timed(*args, _f=original, _n=name, **kwargs):
                start = time.perf_counter()
                try:
                    return await _f(*args, **kwargs)
                finally:
                    marks.append((_n, start, time.perf_counter()))
        else:
            def timed(*args, _f=original, _n=name, **kwargs):
                start = time.perf_counter()
                try:
                    return _f(*args, **kwargs)
                finally:
                    marks.append((_n, start, time.perf_counter()))
        setattr(owner, name, functools.wraps(original)(timed))


async def phases(url: str, size: str, rounds: int, home: Path) -> list[list]:
    marks: list[tuple[str, float, float]] = []
    instrument(marks)
    await ours_call(url, size, home)
    work: dict[str, list[float]] = {name: [] for _, name, _ in STEPS + INSIDE}
    gaps: dict[str, list[float]] = {name: [] for _, name, _ in STEPS}
    gaps["return to the caller"] = []
    totals = []
    for _ in range(rounds):
        marks.clear()
        start = time.perf_counter()
        await ours_call(url, size, home)
        end = time.perf_counter()
        totals.append(end - start)
        previous = start
        for name, began, ended in sorted(marks, key=lambda m: m[1]):
            if name not in gaps:
                work[name].append(ended - began)
                continue
            gaps[name].append(began - previous)
            work[name].append(ended - began)
            previous = ended
        gaps["return to the caller"].append(end - previous)
    rows = []
    for _, name, what in STEPS:
        rows.append([name, what, median(gaps[name]) * 1000, median(work[name]) * 1000])
        if name == "settle":
            rows += [[inner, note, "", median(work[inner]) * 1000] for _, inner, note in INSIDE]
    rows.append(["(end)", "Finished event back to the caller's loop",
                 median(gaps["return to the caller"]) * 1000, 0.0])
    rows.append(["total", "", median(totals) * 1000, ""])
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--sizes", default="1K,4K")
    p.add_argument("--phases", action="store_true", help="time each step of a 1K call")
    args = p.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="nbp-overhead-"))
    rows, ratios = [], {size: [] for size in args.sizes.split(",")}
    with sim_process("--profile", "ideal", "--time-scale", str(SCALE), "--realistic") as url:
        for run in range(args.runs):
            for size in ratios:
                ours, raw = asyncio.run(measure(url, size, args.rounds, home))
                body = len(json.dumps({"x": base64.b64encode((home / "raw-0.png").read_bytes()).decode()}))
                ratio = median(ours) / median(raw)
                ratios[size].append(ratio)
                rows.append([run + 1, size, f"{body / 1e6:.1f} MB", median(raw) * 1000,
                             median(ours) * 1000, ratio])
        breakdown = asyncio.run(phases(url, "1K", args.rounds * 2, home)) if args.phases else None
    jobs.reset_session()
    print_table(["run", "size", "body", "raw ms (median)", "ours ms (median)", "ratio"], rows)
    if breakdown:
        print()
        print_table(["step", "what", "hand-off before, ms", "work, ms"], breakdown)
    summary = [f"{size} ours/raw {statistics.median(r):.2f}"
               + (f" (runs {min(r):.2f}-{max(r):.2f})" if len(r) > 1 else "")
               for size, r in ratios.items()]
    print("ratios: " + "; ".join(summary) + " (goal: 1K <= 1.25, 4K <= 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
