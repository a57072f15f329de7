"""Job states, attempt outcomes and `billed` are closed sets the type checker enforces."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import nbp_jupyter
from nbp_jupyter import states

PACKAGE = Path(nbp_jupyter.__file__).parent
TYPED = ["states.py", "types.py", "store.py", "jobs.py", "errors.py"]


def _mypy(tmp_path, *paths: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports",
         "--no-error-summary", "--cache-dir", str(tmp_path / "mypy-cache"), *paths],
        capture_output=True, text=True, cwd=PACKAGE.parent)


def test_the_core_modules_pass_the_type_checker(tmp_path):
    """A state word misspelt in the core would reach the ledger unnoticed."""
    done = _mypy(tmp_path, *(str(PACKAGE / name) for name in TYPED))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_word_outside_the_sets_is_a_type_error(tmp_path):
    """`billed="unkown"` or a made-up job state would be accepted silently."""
    snippet = tmp_path / "misuse.py"
    snippet.write_text(textwrap.dedent("""
        from nbp_jupyter.types import Attempt
        from nbp_jupyter.jobs import Job
        Attempt(number=1, resolution="1K", model="m", provider="sim", outcome="succeeded",
                http_status=200, waited_s=0, elapsed_s=1, billed="unkown", cost_usd=0,
                detail="")
        def finish(job: Job) -> None:
            job.status = "finished"
    """))
    out = _mypy(tmp_path, str(snippet)).stdout
    for word in ("succeeded", "unkown", "finished"):
        assert word in out, out


def test_the_runtime_sets_match_the_types():
    """Validation and the simulator's tests would check against a different list."""
    assert set(states.BILLED) == {"yes", "no", "unknown"}
    assert "interrupted" in states.JOB_STATUSES and "ok" in states.OUTCOMES
    assert states.FINAL_OUTCOMES <= set(states.OUTCOMES)
