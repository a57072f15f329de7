"""Client overhead: nbp_jupyter.agenerate vs a bare httpx post + base64 decode + file write.

Both fetch the same realistic-size bodies (a 4K PNG of ~16 MB, ~22 MB of JSON) from the same
simulator process at the `ideal` profile with latency scaled to ~nothing, so the difference
is what our checks, ledger and atomic write cost. Rounds alternate to share the machine's
noise.

    python benchmarks/overhead.py [--rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
from pathlib import Path

from _common import median, print_table, sim_process

import nbp_jupyter as nbp
from nbp_jupyter import jobs

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


async def measure(url: str, size: str, rounds: int, home: Path) -> tuple[list[float], list[float]]:
    import httpx
    ours, raw = [], []
    async with httpx.AsyncClient(timeout=120) as client:
        await raw_call(client, url, size, home / "warm.png")  # warm both paths
        await nbp.agenerate("overhead", size=size, provider="gemini", base_url=url,
                            api_key="bench", time_scale=1.0, home=home)
        for i in range(rounds):
            start = time.perf_counter()
            await raw_call(client, url, size, home / f"raw-{i}.png")
            raw.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = await nbp.agenerate("overhead", size=size, provider="gemini", base_url=url,
                                         api_key="bench", time_scale=1.0, home=home)
            ours.append(time.perf_counter() - start)
            assert result.success, result.error
    return ours, raw


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--sizes", default="1K,4K")
    args = p.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="nbp-overhead-"))
    rows, ratios = [], []
    with sim_process("--profile", "ideal", "--time-scale", str(SCALE), "--realistic") as url:
        for size in args.sizes.split(","):
            ours, raw = asyncio.run(measure(url, size, args.rounds, home))
            body = len(json.dumps({"x": base64.b64encode((home / "raw-0.png").read_bytes()).decode()}))
            ratio = median(ours) / median(raw)
            rows.append([size, f"{body / 1e6:.1f} MB", median(raw) * 1000, median(ours) * 1000, ratio])
            ratios.append(f"{size} ours/raw {ratio:.2f}")
    jobs.reset_session()
    print_table(["size", "body", "raw ms (median)", "ours ms (median)", "ratio"], rows)
    print("ratios: " + "; ".join(ratios) + " (goal <= 1.25)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
