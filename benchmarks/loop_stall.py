"""Engine-loop stalls: the longest time the loop that times every HTTP attempt was held up
while 20 4K results land with a panel open, against the same jobs with no panel and with
the panel's old habit (ledger totals and a preview on the loop, in the job listener).

A probe on the loop sleeps 1 ms at a time and records how late it wakes; the stall is that
lateness. Realistic 4K bodies (~20 MB PNGs) from a simulator in its own process.

    python benchmarks/loop_stall.py [--jobs 20] [--size 4K] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, median, print_table, sim_process

sys.path.insert(0, str(ROOT))
from nbp_jupyter.options import from_kwargs  # noqa: E402
from nbp_jupyter import api, jobs, ui  # noqa: E402
from nbp_jupyter.events import Finished  # noqa: E402
from nbp_jupyter.panel_widget import THUMB, Panel  # noqa: E402
from nbp_jupyter.preview import preview_jpeg  # noqa: E402
from nbp_jupyter.records import load_history  # noqa: E402

GOAL_MS = 10.0
PROBE_S = 0.001


async def probe(stop: asyncio.Event, lateness: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(PROBE_S)
        lateness.append(loop.time() - start - PROBE_S)


def old_panel_listener(job, event) -> None:
    """What the panel's event handler did on the loop before the UI thread took it over."""
    if isinstance(event, Finished) and event.result.image_path:
        preview_jpeg(Path(event.result.image_path), THUMB)
        store = jobs.session().store(api.config.resolve(**SETTINGS))
        load_history(store, session=store.session).totals()


def run(mode: str, n: int, size: str) -> list[float]:
    """Longest stalls (ms) while n results land: mode is 'engine', 'panel' or 'old panel'."""
    session = jobs.session()
    stop, lateness = asyncio.Event(), []
    probing = asyncio.run_coroutine_threadsafe(probe(stop, lateness), session.loop)
    time.sleep(0.2)
    options = dict(SETTINGS, size=size, fallback=False)
    if mode == "panel":
        panel = Panel(SETTINGS)
        started = ui.call(panel.submit, "a harbour at night", from_kwargs(options), n).result(60)
    else:
        listener = old_panel_listener if mode == "old panel" else None
        started = [api.submit("a harbour at night", listener=listener, **options)
                   for _ in range(n)]
    for job in started:
        job.wait(600)
    ui.flush(600)
    session.loop.call_soon_threadsafe(stop.set)
    probing.result(30)
    failed = sum(not job.result().success for job in started)
    if failed:
        print(f"  ({mode}: {failed} of {n} jobs failed)")
    jobs.reset_session()
    return sorted((x * 1000 for x in lateness), reverse=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--size", default="4K")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of each mode")
    args = p.parse_args(argv)
    home = tempfile.mkdtemp(prefix="nbp-stall-")
    with sim_process("--profile", "ideal", "--time-scale", "0.0001", "--realistic") as url:
        SETTINGS.update(provider="gemini", base_url=url, api_key="bench", time_scale=1.0,
                        home=home)
        results: dict[str, list[list[float]]] = {"engine": [], "panel": [], "old panel": []}
        for _ in range(args.rounds):
            for mode in results:
                results[mode].append(run(mode, args.jobs, args.size))
    rows, worst = [], {}
    for mode, rounds in results.items():
        worst[mode] = median([r[0] for r in rounds])
        rows.append([mode, worst[mode], median([r[min(9, len(r) - 1)] for r in rounds]),
                     median([r[len(r) // 100] for r in rounds])])
    print(f"{args.jobs} {args.size} results landing, median of {args.rounds} rounds (ms)")
    print_table(["mode", "longest stall", "10th longest", "P99"], rows)
    print(f"ratios: panel/engine {worst['panel'] / worst['engine']:.2f}, old panel/panel "
          f"{worst['old panel'] / worst['panel']:.2f}, panel/goal "
          f"{worst['panel'] / GOAL_MS:.2f} (goal {GOAL_MS:.0f} ms)")
    return 0


SETTINGS: dict = {}

if __name__ == "__main__":
    raise SystemExit(main())
