"""The shipped notebooks, run against a 'real' provider with a recognisable fake key: the key
appears in nothing they produce (outputs, saved notebooks, ledger, images, kernel logs)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FAKE_KEY = "fake-key-NBP-NOTEBOOK-SCAN-9c2d"


@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "03_reliable_4k.ipynb"])
def test_key_never_leaks_from_a_notebook_run(tmp_path, monkeypatch, make_sim, name):
    server = make_sim(profile="typical", time_scale=0.002, seed=11)
    for var in ("GOOGLE_API_KEY", "OPENAI_API_KEY", "NBP_API_KEY", "NBP_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)  # the provider becomes gemini, on our sim
    monkeypatch.setenv("NBP_BASE_URL", server.url)
    monkeypatch.setenv("NBP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NBP_TIME_SCALE", "0.002")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if name == "03_reliable_4k.ipynb":  # that tutorial asks for the simulator by name
        for cell in nb.cells:
            cell.source = cell.source.replace('provider="sim",', 'provider="gemini",')
    logs = []
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.on_cell_executed = lambda **kw: logs.append(str(kw.get("execute_reply")))
    client.execute()
    nbformat.write(nb, tmp_path / name)
    produced = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".png" for p in produced)  # it really made images
    for path in produced:
        assert FAKE_KEY.encode() not in path.read_bytes(), path
    assert FAKE_KEY not in "".join(logs) + str(server.log)
    outputs = str([c.get("outputs") for c in nb.cells])
    assert "gemini" in outputs or "4K" in outputs
    assert FAKE_KEY not in outputs
