"""nbp_jupyter: Nano Banana Pro image generation for notebooks, calm about slow and failing calls.

`import nbp_jupyter` stays cheap: the heavy parts load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:  # the installed distribution's version, so it never disagrees with pyproject.toml
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("nbp-jupyter")
except PackageNotFoundError:  # pragma: no cover - running from a source tree, uninstalled
    __version__ = "0+unknown"
__all__ = [
    "AttemptError", "ConfigError", "GenerationResult", "Attempt", "Job", "NbpError",
    "RetryPolicy", "Rung", "agenerate", "generate", "history", "panel", "set_price", "submit",
    "BatchJob", "batch", "batch_job", "refine", "conversation_of", "edit",
]

_LAZY = {
    "generate": "api", "agenerate": "api", "submit": "api", "history": "api",
    "refine": "api", "conversation_of": "api",
    "GenerationResult": "types", "Attempt": "types", "Job": "jobs",
    "NbpError": "errors", "ConfigError": "errors", "AttemptError": "errors",
    "RetryPolicy": "policy", "Rung": "policy", "set_price": "pricing", "panel": "panel_widget",
    "BatchJob": "batching", "batch": "batching", "batch_job": "batching", "edit": "api",
}

if TYPE_CHECKING:  # pragma: no cover
    from .api import agenerate, conversation_of, edit, generate, history, refine, submit
    from .batching import BatchJob, batch, batch_job
    from .errors import AttemptError, ConfigError, NbpError
    from .jobs import Job
    from .panel_widget import panel
    from .policy import RetryPolicy, Rung
    from .pricing import set_price
    from .types import Attempt, GenerationResult


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext nbp_jupyter`: register %%nbp, the line magics and %config Nbp."""
    from .batch_magics import register as register_batch_magics
    from .magics import Nbp, NbpMagics

    conf = Nbp(parent=ipython)
    ipython.configurables.append(conf)
    magics = NbpMagics(ipython, conf)
    ipython.register_magics(magics)
    register_batch_magics(ipython, conf)  # %%nbp_batch, %nbp_batches; resumes batches
    magics.announce_stale()  # status lines a restarted kernel left behind say what happened


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics; running jobs finish in the background and are kept in the ledger."""
    magics = ipython.magics_manager.magics
    for kind, names in (("cell", ("nbp", "nbp_batch")),
                        ("line", ("nbp", "nbp_wait", "nbp_cancel", "nbp_jobs", "nbp_history",
                                  "nbp_show", "nbp_config", "nbp_panel", "nbp_batch",
                                  "nbp_batches"))):
        for name in names:
            magics[kind].pop(name, None)
    ipython.configurables[:] = [c for c in ipython.configurables
                                if type(c).__name__ != "Nbp"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbp_jupyter' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
