"""Notebook weight: bytes one 4K result adds to a saved .ipynb, ours vs the full image inline.

Ours is exactly what %%nbp leaves in the cell (an image/jpeg output of the preview, long
side 1024 px, and the caption); the baseline is the same PNG displayed inline as image/png. Both are measured as
nbformat writes them.

    python benchmarks/notebook_weight.py
"""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import nbformat
from _common import print_table, sim_process
from nbformat.v4 import new_code_cell, new_notebook, new_output

import nbp_jupyter as nbp
from nbp_jupyter import display, jobs


def notebook_bytes(outputs: list[tuple[dict, dict]]) -> int:
    cell = new_code_cell("%%nbp --size 4K\nA harbour at night")
    cell.outputs = [new_output("display_data", data=data, metadata=meta) for data, meta in outputs]
    return len(nbformat.writes(new_notebook(cells=[cell])).encode())


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="nbp-weight-"))
    with sim_process("--profile", "ideal", "--time-scale", "0.0001", "--realistic") as url:
        result = nbp.generate("A harbour at night", size="4K", aspect="16:9", provider="gemini",
                              base_url=url, api_key="bench", time_scale=1.0, home=home)
    jobs.reset_session()
    png = Path(result.image_path).read_bytes()
    empty = notebook_bytes([])
    picture, caption = display.result_outputs(result)  # what %%nbp leaves: image, caption
    ours = notebook_bytes([picture, (caption, {})]) - empty
    inline = notebook_bytes([({"image/png": base64.b64encode(png).decode(),
                               "text/plain": "<image>"}, {})]) - empty
    print_table(["what", "bytes added to the .ipynb"],
                [["full 4K PNG inline", inline], ["nbp_jupyter result (preview + caption)", ours],
                 ["full image on disk", len(png)]])
    print(f"ratios: inline/ours {inline / ours:.1f} (goal >= 30); "
          f"file on disk {Path(result.image_path).is_file()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
