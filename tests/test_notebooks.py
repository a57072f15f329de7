"""The shipped notebooks run headless in a real kernel, keep their final images, and export
to Markdown and HTML with those images."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def keyless(folder: Path, monkeypatch, profile: str | None = None) -> None:
    """The environment of a headless run against the keyless simulator: no keys, a home in
    `folder`, a fast clock. Its seed is random, so a run about something other than failures
    takes `profile="ideal"`: a 2 % safety block in "typical" would end a tutorial's job
    without an image now and then."""
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "NBP_API_KEY",
                "NBP_PROVIDER", "NBP_BASE_URL", "NBP_WAIT", "NBP_SIM_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    if profile:
        monkeypatch.setenv("NBP_SIM_PROFILE", profile)
    monkeypatch.setenv("NBP_HOME", str(folder / "home"))
    monkeypatch.setenv("NBP_TIME_SCALE", "0.002")


def execute(name: str, tmp_path: Path, monkeypatch,
            profile: str | None = None) -> nbformat.NotebookNode:
    """Run a shipped notebook headless against the keyless simulator (see `keyless`)."""
    keyless(tmp_path, monkeypatch, profile)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / name)
    return nb


def outputs(nb, source_start: str) -> list[dict]:
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start))
    return cell.outputs


def html_of(outs) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outs)


def text_of(outs) -> str:
    """What a cell printed and the text/plain of what it displayed."""
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outs)


def images_of(outs) -> list[dict]:
    return [o for o in outs if "image/jpeg" in o.get("data", {})]


def assert_exports_keep_images(nb):
    """Markdown export (images extracted as files, as Jupyter Book and GitHub need) and HTML
    export both carry every result's image, with its display width."""
    from nbconvert import HTMLExporter, MarkdownExporter

    results = [o for c in nb.cells if c.cell_type == "code" for o in images_of(c.outputs)]
    assert all(o.metadata["image/jpeg"]["width"] > 0 for o in results)  # magics' and reprs'
    assert any(o.data["text/plain"].startswith("[image ") for o in results)  # %%nbp's own
    markdown, resources = MarkdownExporter().from_notebook_node(nb)
    files = [name for name in resources["outputs"] if name.endswith(".jpg")]
    assert len(files) == len(results)
    assert all(f"]({name})" in markdown or f'src="{name}"' in markdown for name in files)
    assert "nbp-result" in markdown  # the captions travel too
    page, _ = HTMLExporter().from_notebook_node(nb)
    assert page.count('src="data:image/jpeg;base64,') >= len(results)
    assert page.count("width=") >= len(results)


def assert_no_errors(nb):
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (cell.source, out.get("evalue"))
            assert out.get("name") != "stderr", (cell.source, out.get("text"))


def test_quickstart_headless(tmp_path, monkeypatch):
    """The quickstart leaves images and captions, not frozen status lines, in the saved file."""
    nb = execute("01_quickstart.ipynb", tmp_path, monkeypatch)
    assert_no_errors(nb)
    assert_exports_keep_images(nb)
    first = html_of(outputs(nb, "%%nbp --size 1K"))
    assert 'class="nbp-result ' in first and "nbp-status" not in first
    assert "1K → 1K" in first and "SIMULATED" in first
    assert len(images_of(outputs(nb, "%%nbp --size 1K"))) == 1
    big = html_of(outputs(nb, "%%nbp --size 4K"))
    assert 'class="nbp-result ' in big and "4K → " in big
    history = html_of(outputs(nb, "%nbp_history"))
    assert "billed $" in history and "nbp-table" in history
    text = "".join(o.get("text", "") for o in outputs(nb, "result = big.result()"))
    assert "4K → " in text
    size = (tmp_path / "01_quickstart.ipynb").stat().st_size
    assert size < 2_000_000  # previews, not full images


def test_prompt_exploration_headless(tmp_path, monkeypatch):
    """Three takes in a grid, variants from Python, an upgrade to 2K, a cost table."""
    nb = execute("02_prompt_exploration.ipynb", tmp_path, monkeypatch)
    assert_no_errors(nb)
    assert_exports_keep_images(nb)
    grid = outputs(nb, "%%nbp -n 3")
    assert html_of(grid).count('class="nbp-result ') == 3 and len(images_of(grid)) == 3
    printed = "".join(o.get("text", "") for o in outputs(nb, "best = results"))
    assert printed.startswith("2K → ")
    table = "".join(o.get("text", "") for o in outputs(nb, "for style, r in results.items():\n    print(f\"{style:22} {r.resolution}"))
    assert "total $" in table


def test_reliable_4k_headless(tmp_path, monkeypatch):
    """The 4K tutorial runs both profiles and reads the ledger back."""
    nb = execute("03_reliable_4k.ipynb", tmp_path, monkeypatch)
    assert_no_errors(nb)
    if any(images_of(c.get("outputs", [])) for c in nb.cells):
        assert_exports_keep_images(nb)
    text = "".join(o.get("text", "") for o in outputs(nb, "for profile, results in runs.items():"))
    assert "typical" in text and "peak" in text and "billed $" in text
    hedging = "".join(o.get("text", "") for o in outputs(nb, "import tempfile\nfrom nbp_jupyter import sim"))
    assert "plain " in hedging and "hedges 0 " in hedging and "hedged  hedges " in hedging
    assert "hedged  hedges 0 " not in hedging  # the hedged run did hedge
    ledger = "".join(o.get("text", "") for o in outputs(nb, "totals = nbp.history()"))
    assert "4K:" in ledger and "calls per image" in ledger


def test_refine_headless(tmp_path, monkeypatch):
    """The refine tutorial: refines by magic and from Python, a branch from turn 1,
    references drawn in the notebook, and a search-grounded image, all kept in the file."""
    nb = execute("05_refine.ipynb", tmp_path, monkeypatch, profile="ideal")
    assert_no_errors(nb)
    assert_exports_keep_images(nb)
    first = html_of(outputs(nb, "%%nbp --size 1K --aspect 4:3"))
    assert 'class="nbp-result ' in first and "turn " not in first
    stormy = html_of(outputs(nb, "%%nbp --refine _"))
    assert "turn 2 · refines " in stormy and len(images_of(outputs(nb, "%%nbp --refine _"))) == 1
    boat = text_of(outputs(nb, "import nbp_jupyter as nbp"))
    assert "turn 3 · refines " in boat
    listed = text_of(outputs(nb, "for turn in nbp.conversation_of(boat)"))
    chain = [line.split(" ", 2) for line in listed.splitlines()]
    assert [c[0] for c in chain] == ["1", "2", "3"] and chain[2][2].startswith("Add a red")
    branch = text_of(outputs(nb, "noon = nbp.refine(harbour"))
    assert "turn 2 · refines " in branch and "[(1, 'A small harbour" in branch
    assert "(2, 'The same harbour at noon" in branch and "stormy" not in branch
    assert (tmp_path / "logo.png").exists() and (tmp_path / "stripes.png").exists()
    mug = outputs(nb, "%%nbp --image logo.png")
    assert len(images_of(mug)) == 1 and 'class="nbp-result ' in html_of(mug)
    shelf = text_of(outputs(nb, "shelf = mug.refine("))
    assert "turn 2 · refines " in shelf and len(images_of(outputs(nb, "shelf = mug.refine("))) == 1
    grounded = html_of(outputs(nb, "%%nbp --search"))
    assert 'class="nbp-search-entry"' in grounded and "nbp-sources" in grounded
