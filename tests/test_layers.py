"""The arrows between layers (docs/architecture.md): what shows things never decides them."""

from __future__ import annotations

import ast
from pathlib import Path

import nbp_jupyter

PACKAGE = Path(nbp_jupyter.__file__).parent
FACE = ["magics.py", "panel_widget.py", "panel_turns.py", "live.py", "display.py", "records.py",
        "estimate.py", "ui.py", "stale.py", "batch_magics.py", "batch_view.py"]
# Decisions, the wire and the network stay behind the api and jobs layers.
BEHIND = {"policy", "engine", "providers", "answer_stream", "checks", "batch_runner", "sim"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
    return names


def test_the_face_does_not_import_decisions_or_the_wire():
    """A display that picks its own ladder or talks HTTP would drift from the API's rules."""
    found = {name: sorted(_imports(PACKAGE / name) & BEHIND) for name in FACE
             if (PACKAGE / name).exists()}
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_providers_and_policy_stay_pure():
    """Pure parts that reached for sockets, files or the ledger could not be tested on bytes."""
    impure = {"engine", "store", "jobs", "api", "magics", "panel_widget", "panel_turns", "live",
              "ui"}
    for path in [PACKAGE / "policy.py", *sorted((PACKAGE / "providers").glob("*.py"))]:
        assert not (_imports(path) & impure), path.name
        assert not {"socket", "sqlite3", "asyncio"} & {  # httpx.Request is a value here
            n.names[0].name.split(".")[0] for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Import)}, path.name
