"""Each benchmark script still runs end to end (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script,args", [
    ("goodput.py", ["--requests", "4", "--concurrency", "4", "--profiles", "typical",
                    "--time-scale", "0.001"]),
    ("goodput.py", ["--standin", "--requests", "3", "--policies", "ours,seeds",
                    "--time-scale", "0.001"]),
    ("policy_search.py", ["--requests", "6", "--concurrency", "2", "--world", "independent"]),
    ("overhead.py", ["--rounds", "1", "--sizes", "1K"]),
    ("notebook_weight.py", []),
    ("memory.py", ["--jobs", "2", "--runs", "1"]),
    ("responsiveness.py", ["--jobs", "5", "--samples", "3", "--time-scale", "0.05"]),
    ("loop_stall.py", ["--jobs", "2", "--size", "1K", "--rounds", "1"]),
    ("batch_scale.py", ["--prompts", "6", "--time-scale", "0.001"]),
    ("batch_memory.py", ["--lines", "3"]),
    ("history_load.py", ["--jobs", "20", "--rounds", "1"]),
    ("build_stall.py", ["--mb", "1", "--rounds", "1"]),
])
def test_benchmark_runs_and_prints_its_ratios(script, args, tmp_path):
    """A broken benchmark is found by the suite, not when someone needs the numbers."""
    run = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                         text=True, timeout=180, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ratios:" in run.stdout.splitlines()[-1]
