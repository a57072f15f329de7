"""Memory: peak extra RSS while 20 realistic 4K answers (~16 MB PNG, ~22 MB JSON each) are in
flight at once, against the image bytes in flight; and the same for a bare httpx client that
reads each body whole, `json.loads` it, decodes the base64 and writes the file (what parsing
an answer whole costs), measured against the same simulator in the same run.

Each measurement runs in a fresh child process: a process keeps memory it has freed, so a
second measurement in the same process would start from a warm heap. Runs alternate.

    python benchmarks/memory.py [--jobs 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT, print_table, sim_process

GEMINI = "/v1beta/models/gemini-3-pro-image-preview:generateContent"


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.running = 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.005)


def ours(url: str, jobs: int, home: Path) -> list[Path]:
    import nbp_jupyter as nbp
    from nbp_jupyter import jobs as session

    common = dict(size="4K", provider="gemini", base_url=url, api_key="bench",
                  time_scale=1.0, home=home, max_concurrency=jobs)
    nbp.generate("warm-up", **common)  # imports, pools, thread pool, first image
    baseline, sampler = rss_bytes(), Sampler()
    sampler.start()
    handles = [nbp.submit(f"memory {i}", **common) for i in range(jobs)]
    results = [h.result() for h in handles]
    sampler.running = False
    sampler.join()
    session.reset_session()
    assert all(r.success for r in results), [r.error for r in results if not r.success]
    return baseline, sampler.peak, [Path(r.image_path) for r in results]


def bare(url: str, jobs: int, home: Path):
    import httpx

    body = {"contents": [{"role": "user", "parts": [{"text": "memory"}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                                 "imageConfig": {"aspectRatio": "1:1", "imageSize": "4K"}}}

    async def one(client, name: str) -> Path:
        response = await client.post(url + GEMINI, json={**body, "n": name},
                                     headers={"x-goog-api-key": "bench"})
        parts = response.json()["candidates"][0]["content"]["parts"]
        data = base64.b64decode(next(p["inlineData"]["data"] for p in parts if "inlineData" in p))
        path = home / f"{name}.png"
        await asyncio.to_thread(path.write_bytes, data)
        return path

    async def main():
        limits = httpx.Limits(max_connections=jobs * 2)
        async with httpx.AsyncClient(timeout=600, limits=limits) as client:
            await one(client, "warm-up")
            baseline, sampler = rss_bytes(), Sampler()
            sampler.start()
            paths = await asyncio.gather(*(one(client, f"memory-{i}") for i in range(jobs)))
            sampler.running = False
            sampler.join()
            return baseline, sampler.peak, paths

    return asyncio.run(main())


def child(kind: str, url: str, jobs: int) -> None:
    """One measurement; prints 'baseline peak image_bytes' for the parent."""
    home = Path(tempfile.mkdtemp(prefix=f"nbp-memory-{kind}-"))
    baseline, peak, paths = (ours if kind == "ours" else bare)(url, jobs, home)
    print(baseline, peak, sum(p.stat().st_size for p in paths))


def measure(kind: str, url: str, jobs: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--url", url,
                          "--jobs", str(jobs)], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout.split()
    baseline, peak, images = (int(v) for v in out[-3:])
    return peak - baseline, images


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--child", choices=["ours", "bare"], help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.url, args.jobs)
        return 0
    ratios: dict[str, list[float]] = {"ours": [], "bare": []}
    rows = []
    # the server answers all at once: 1 s of latency lets every request get there first
    with sim_process("--profile", "ideal", "--time-scale", "0.05", "--realistic") as url:
        for run in range(args.runs):
            for kind in ("ours", "bare") if run % 2 == 0 else ("bare", "ours"):
                extra, images = measure(kind, url, args.jobs)
                ratios[kind].append(extra / images)
                rows.append([run + 1, kind, extra / 1e6, images / 1e6, extra / images])
    print_table(["run", "client", "peak extra MB", f"{args.jobs} images MB", "extra/images"],
                rows)
    ours_r, bare_r = ratios["ours"], ratios["bare"]
    print(f"ratios: peak extra / image bytes in flight, ours {statistics.median(ours_r):.2f} "
          f"(runs {min(ours_r):.2f}-{max(ours_r):.2f}; goal <= 1.5), bare httpx + json.loads "
          f"{statistics.median(bare_r):.2f} (runs {min(bare_r):.2f}-{max(bare_r):.2f}); "
          f"ours/bare {statistics.median(ours_r) / statistics.median(bare_r):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
