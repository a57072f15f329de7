"""The references-and-search tutorial runs headless and keeps what it shows."""

from __future__ import annotations

from tests.test_notebooks import (assert_exports_keep_images, assert_no_errors, execute,
                                  html_of, images_of, outputs)


def test_references_and_search_tutorial_headless(tmp_path, monkeypatch):
    """The tutorial's references, edit and grounded image would break or lose their outputs."""
    nb = execute("06_references_and_search.ipynb", tmp_path, monkeypatch,
                 profile="ideal")
    assert_no_errors(nb)
    assert_exports_keep_images(nb)
    refs = outputs(nb, "%%nbp --image mug.png")
    assert 'class="nbp-result ' in html_of(refs) and len(images_of(refs)) == 1
    edited = "".join(o.get("text", "") for o in outputs(nb, "import nbp_jupyter as nbp"))
    assert "1K → 1K" in edited
    grounded = html_of(outputs(nb, "%%nbp --search"))
    assert grounded.count("<iframe") == 1 and "Sources:" in grounded
    assert "<script" not in grounded.lower()
    totals = "".join(o.get("text", "") for o in outputs(nb, "totals = "))
    assert "2 search queries" in totals
