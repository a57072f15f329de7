"""The batch tutorial runs headless in a real kernel, restarted in the middle as a reader
would, and collects its batch after the restart."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient
from nbclient.util import run_sync

from .test_notebooks import NOTEBOOKS, assert_no_errors, html_of, keyless, outputs


def test_batch_tutorial_creates_restarts_and_collects(tmp_path, monkeypatch):
    """Create a batch, restart the kernel, collect every line: the saved file shows it."""
    keyless(tmp_path, monkeypatch)
    monkeypatch.setenv("NBP_WAIT", "0")  # the batch cell returns at once, as it does for a reader
    nb = nbformat.read(NOTEBOOKS / "04_batch.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    restarts = 0
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if "restart" in cell.metadata.get("tags", []):
                run_sync(client.km.restart_kernel)(now=True)  # a kill, as a reader's restart
                run_sync(client.kc.wait_for_ready)(timeout=60)
                restarts += 1
            if cell.cell_type == "code":
                client.execute_cell(cell, index)
    nbformat.write(nb, tmp_path / "04_batch.ipynb")
    print(tmp_path / "04_batch.ipynb")
    assert restarts == 1
    assert_no_errors(nb)
    made = html_of(outputs(nb, "%%nbp_batch"))
    assert 'class="nbp-batch ' in made and "product-shots" in made
    handle = "".join(o.get("data", {}).get("text/plain", "") for o in outputs(nb, "shots  #"))
    assert " pending " in handle or " creating " in handle  # unfinished when the kernel went
    table = html_of(next(c.outputs for c in nb.cells if c.source == "%nbp_batches"))
    assert "product-shots" in table
    sheet = html_of(outputs(nb, "%nbp_batches product-shots"))
    assert 'class="nbp-sheet ' in sheet and sheet.count("<figure") == 6
    assert "data:image/jpeg;base64" in sheet and "SIMULATED" in sheet
    printed = "".join(o.get("text", "") for o in outputs(nb, "import nbp_jupyter as nbp"))
    assert printed.startswith("done: ") and "of 6" in printed and "2K → 2K" in printed
    rows = "".join(o.get("text", "") for o in outputs(nb, "import pandas as pd"))
    assert "1024x1024" in rows or "1376x768" in rows
    price = "".join(o.get("text", "") for o in outputs(nb, "from nbp_jupyter import pricing"))
    assert "(50%)" in price
