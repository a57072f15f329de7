"""Kernel responsiveness: a trivial cell's round trip with 100 jobs in flight vs idle, and how
fast `%%nbp` hands the cell back vs a blocking call of the same job. Uses a real ipykernel.

    python benchmarks/responsiveness.py [--jobs 100] [--samples 40]
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import ROOT, median, print_table, sim_process

sys.path.insert(0, str(ROOT))
from tests.kernel import Kernel  # noqa: E402  (the same driver the kernel tests use)


def round_trips(kernel: Kernel, code: str, samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        kernel.run(code)
        out.append(time.perf_counter() - start)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=100)
    p.add_argument("--samples", type=int, default=40)
    p.add_argument("--time-scale", default="1", help="simulator time scale (1: a 4K call takes 20 s)")
    args = p.parse_args(argv)
    import tempfile
    home = tempfile.mkdtemp(prefix="nbp-resp-")
    # ideal profile at time scale 1: a 4K call takes 20 s, so the jobs stay in flight
    with sim_process("--profile", "ideal", "--time-scale", args.time_scale) as url:
        kernel = Kernel({"NBP_HOME": home, "NBP_PROVIDER": "gemini", "NBP_BASE_URL": url,
                         "NBP_API_KEY": "bench", "NBP_WAIT": "never",
                         "NBP_MAX_CONCURRENCY": str(args.jobs)})
        try:
            kernel.run("%load_ext nbp_jupyter\nimport nbp_jupyter as nbp")
            idle = round_trips(kernel, "pass", args.samples)
            kernel.run(f"held = [nbp.submit(f'busy {{i}}', size='4K') for i in range({args.jobs})]")
            time.sleep(1.0)  # steady state: every job has sent its request and is waiting
            busy = round_trips(kernel, "pass", args.samples)
            in_flight = kernel.eval("sum(not j.done() for j in held)")
            magic = round_trips(kernel, "%%nbp --size 1K\nreturn at once", 10)
            kernel.run("%nbp_cancel --all")
            # the same 1K job, blocking: 5 simulated seconds of generation
            blocking = round_trips(kernel, "nbp.generate('blocking', size='1K')", 3)
        finally:
            kernel.close()
    print_table(["what", "median ms"], [
        ["trivial cell, idle", median(idle) * 1000],
        [f"trivial cell, {in_flight} jobs in flight", median(busy) * 1000],
        ["%%nbp returns control", median(magic) * 1000],
        ["blocking generate() of a 1K job", median(blocking) * 1000]])
    print(f"ratios: busy/idle {median(busy) / median(idle):.2f} (goal <= 1.5); "
          f"%%nbp {median(magic) * 1000:.1f} ms (goal < 50 ms), blocking/%%nbp "
          f"{median(blocking) / median(magic):.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
