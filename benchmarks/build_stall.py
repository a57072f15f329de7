"""Engine-loop stalls while a refine's request is built: the body written by
`json_body.dumps` (the images' base64 spliced in ~1 MB pieces) against the way it was
written before (each image's base64 whole, then `json.dumps` of the document), for the same
~18 MB refine, alternating, in one run.

The build runs in a worker thread (`asyncio.to_thread`, as the engine runs it), yet a
single long C call there holds the GIL and the loop cannot wake. A probe on the loop sleeps
1 ms at a time and records how late it wakes; the stall is that lateness.

The floor is the same probe while a worker thread only sleeps.

    python benchmarks/build_stall.py [--mb 13.5] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nbp_jupyter.providers import gemini, json_body  # noqa: E402
from nbp_jupyter.turns import Part, Turn  # noqa: E402
from nbp_jupyter.types import ReferenceImage, Request  # noqa: E402

PROBE_S = 0.001


def refine(total_mb: float) -> Request:
    """A refine with an earlier turn's image and two references, `total_mb` of images."""
    third = int(total_mb * 2**20 / 3)
    history = (Turn("user", (Part(text="a kite"),)),
               Turn("model", (Part(mime="image/png", signature="c2ln",
                                   data=os.urandom(third)),)))
    refs = tuple(ReferenceImage(data=os.urandom(third), mime="image/jpeg", name=f"r{i}",
                                path=f"/r{i}") for i in range(2))
    return Request(prompt="make it bluer", size="4K", provider="gemini", history=history,
                   images=refs)


def whole_strings(value):
    """The document as the old build made it: each image's base64 as one string."""
    if isinstance(value, json_body.Base64):
        return value.prefix + base64.b64encode(value.data).decode("ascii")
    if isinstance(value, dict):
        return {k: whole_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_strings(v) for v in value]
    return value


def old_build(request: Request) -> bytes:
    return json.dumps(whole_strings(gemini.request_body(request, "4K"))).encode()


def new_build(request: Request) -> bytes:
    return json_body.dumps(gemini.request_body(request, "4K"))


def no_build(request: Request) -> None:
    """The floor: a worker thread that only sleeps, as long as a build takes."""
    time.sleep(0.05)


async def probe(lateness: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(PROBE_S)
        lateness.append(loop.time() - start - PROBE_S)


def stall_ms(loop: asyncio.AbstractEventLoop, lateness: list[float], build, request) -> float:
    """The longest the loop waited while `build` ran in a worker thread, in ms."""
    time.sleep(0.05)
    lateness.clear()
    asyncio.run_coroutine_threadsafe(asyncio.to_thread(build, request), loop).result(60)
    time.sleep(0.02)  # the probe's wake-up after the last stall
    return max(lateness) * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=float, default=13.5, help="images in the refine (MB, raw)")
    p.add_argument("--rounds", type=int, default=7, help="alternating builds of each way")
    args = p.parse_args(argv)
    request = refine(args.mb)
    if new_build(request) != old_build(request):
        raise SystemExit("the two builds wrote different bodies")
    size = len(new_build(request)) / 2**20
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    lateness: list[float] = []
    asyncio.run_coroutine_threadsafe(probe(lateness), loop)
    ways = {"spliced": new_build, "json.dumps whole": old_build, "no build": no_build}
    stalls: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(args.rounds):
        for way, build in ways.items():
            stalls[way].append(stall_ms(loop, lateness, build, request))
    print(f"a {size:.1f} MB refine body built in a worker thread, {args.rounds} alternating "
          "builds each: the loop's longest stall per build (ms)")
    for way, values in stalls.items():
        print(f"  {way:17} median {statistics.median(values):6.1f}  "
              f"range {min(values):.1f}-{max(values):.1f}")
    ours, old, floor = (statistics.median(v) for v in stalls.values())
    print(f"ratios: spliced/json.dumps longest stall {ours / old:.2f}, "
          f"spliced/no build {ours / floor:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
