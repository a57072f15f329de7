"""Memory: peak extra RSS while 20 realistic 4K responses (~16 MB PNG, ~22 MB JSON each) are
in flight at once, against the image bytes in flight. The simulator runs in its own process.

    python benchmarks/memory.py [--jobs 20]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from _common import print_table, sim_process

import nbp_jupyter as nbp
from nbp_jupyter import jobs


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20)
    args = p.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="nbp-memory-"))
    # the server answers all at once: 1 s of latency lets every request get there first
    with sim_process("--profile", "ideal", "--time-scale", "0.05", "--realistic") as url:
        common = dict(size="4K", provider="gemini", base_url=url, api_key="bench",
                      time_scale=1.0, home=home, max_concurrency=args.jobs)
        nbp.generate("warm-up", **common)  # imports, pools, thread pool, first image
        baseline = rss_bytes()
        sampler = Sampler()
        sampler.start()
        handles = [nbp.submit(f"memory {i}", **common) for i in range(args.jobs)]
        results = [h.result() for h in handles]
        sampler.running = False
        sampler.join()
    jobs.reset_session()
    assert all(r.success for r in results), [r.error for r in results if not r.success]
    image_bytes = sum(Path(r.image_path).stat().st_size for r in results)
    extra = sampler.peak - baseline
    print_table(["what", "MB"], [["RSS before", baseline / 1e6], ["peak RSS", sampler.peak / 1e6],
                                 ["peak extra", extra / 1e6],
                                 [f"{args.jobs} images in flight", image_bytes / 1e6]])
    print(f"ratios: peak extra / image bytes in flight {extra / image_bytes:.2f} (goal <= 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
