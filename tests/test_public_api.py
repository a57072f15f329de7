"""The public names are a contract, and importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys

import nbp_jupyter


def test_public_names_are_pinned():
    """Renaming or dropping a public name breaks users' notebooks: it must be deliberate."""
    assert sorted(nbp_jupyter.__all__) == sorted([
        "AttemptError", "ConfigError", "GenerationResult", "Attempt", "Job", "NbpError",
        "RetryPolicy", "Rung", "agenerate", "generate", "history", "panel", "set_price",
        "submit", "BatchJob", "batch", "batch_job", "refine", "conversation_of", "edit"])
    for name in nbp_jupyter.__all__:
        assert getattr(nbp_jupyter, name) is not None


def test_import_is_cheap():
    """`import nbp_jupyter` loads neither httpx, Pillow, IPython nor ipywidgets."""
    code = ("import sys, nbp_jupyter; heavy = [m for m in ('httpx', 'PIL', 'IPython', "
            "'ipywidgets', 'sqlite3') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_comes_from_the_installed_metadata():
    """A bug report's version would disagree with what pip installed."""
    from importlib.metadata import version

    assert nbp_jupyter.__version__ == version("nbp-jupyter") != "0+unknown"


def test_refines_shown_signature_names_every_handle_it_takes():
    """Shift-Tab on refine said `Job | str`, hiding that generate()'s result works too."""
    import inspect

    shown = str(inspect.signature(nbp_jupyter.refine).parameters["job_or_id"])
    assert all(kind in shown for kind in ("Job", "GenerationResult", "str"))
