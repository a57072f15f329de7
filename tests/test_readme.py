"""The README's two commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text())


def test_readme_starts_with_the_two_commands():
    """First the quickstart, then the test suite, before any other code block."""
    first, second = commands()[:2]
    assert "jupyter lab" in first and "notebooks/01_quickstart.ipynb" in first and "[lab]" in first
    assert "[test]" in second and "pytest" in second
    assert (ROOT / "notebooks" / "01_quickstart.ipynb").is_file()


def test_ci_runs_the_readme_test_command():
    """.ci/run runs exactly the README's test command."""
    assert commands()[1] in (ROOT / ".ci" / "run").read_text()
