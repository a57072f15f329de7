"""Memory while a batch's results file is downloaded and split into images: peak extra RSS
of our client (streamed, line by line) against a bare client that reads the whole body
(httpx `.content`, splitlines, json, base64), each in a fresh process, on the same file,
in the same run. The simulator runs in its own process with realistic (incompressible)
2K images: 180 lines make a responses file of about 1 GB.

    python benchmarks/batch_memory.py [--lines 180]
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, print_table, sim_process
from memory import Sampler, rss_bytes

SCALE = 0.0001


def ours(url: str, lines: int, home: Path) -> tuple[int, int, str]:
    import nbp_jupyter as nbp
    from nbp_jupyter import jobs
    from nbp_jupyter.batch_store import BatchLedger

    common = dict(size="2K", provider="gemini", base_url=url, api_key="bench",
                  time_scale=SCALE, home=home)
    warm = nbp.batch(["warm-up"], max_response_mb=1, **common)  # the file route, once
    warm.wait()
    baseline, sampler = rss_bytes(), Sampler()
    sampler.start()
    job = nbp.batch([f"memory {i}" for i in range(lines)], max_response_mb=16, **common)
    job.wait()
    sampler.running = False
    sampler.join()
    assert job.state == "done", (job.state, job.error)
    with BatchLedger(home) as ledger:
        responses = ledger.batch(job.id)["responses_file"]
    jobs.reset_session()
    return baseline, sampler.peak, responses


def bare(url: str, responses: str, home: Path) -> tuple[int, int, str]:
    import httpx

    headers = {"x-goog-api-key": "bench"}
    baseline, sampler = rss_bytes(), Sampler()
    sampler.start()
    body = httpx.get(f"{url}/download/v1beta/{responses}:download?alt=media", headers=headers,
                     timeout=600).content
    for number, raw in enumerate(body.splitlines()):
        item = json.loads(raw)
        for part in item.get("response", {}).get("candidates", [{}])[0].get(
                "content", {}).get("parts", []):
            if "inlineData" in part:
                (home / f"{number}.png").write_bytes(base64.b64decode(part["inlineData"]["data"]))
    sampler.running = False
    sampler.join()
    return baseline, sampler.peak, responses


def child(kind: str, url: str, arg: str) -> None:
    home = Path(tempfile.mkdtemp(prefix=f"nbp-batch-memory-{kind}-"))
    baseline, peak, responses = (ours(url, int(arg), home) if kind == "ours"
                                 else bare(url, arg, home))
    print(baseline, peak, responses)


def measure(kind: str, url: str, arg: str) -> tuple[int, str]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, "--url", url, "--arg", arg],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    baseline, peak, responses = out.stdout.split()[-3:]
    return int(peak) - int(baseline), responses


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=180)
    p.add_argument("--child")
    p.add_argument("--url")
    p.add_argument("--arg")
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.url, args.arg)
        return 0
    with tempfile.TemporaryDirectory(prefix="nbp-batch-memory-sim-") as state:
        with sim_process("--profile", "ideal", "--time-scale", str(SCALE), "--realistic",
                         "--state-dir", state) as url:
            ours_extra, responses = measure("ours", url, str(args.lines))
            size = (Path(state) / "files" / responses.removeprefix("files/")).stat().st_size
            bare_extra, _ = measure("bare", url, responses)
    mb = 2 ** 20
    print_table(["client", "results file MB", "peak extra RSS MB", "extra / file"],
                [["ours (streamed, line by line)", round(size / mb), round(ours_extra / mb),
                  round(ours_extra / size, 3)],
                 ["bare (whole body, then split)", round(size / mb), round(bare_extra / mb),
                  round(bare_extra / size, 3)]])
    print(f"ratios: ours/bare peak extra {ours_extra / max(bare_extra, 1):.3f}; "
          f"ours extra / file {ours_extra / size:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
