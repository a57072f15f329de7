"""Every simulated fault x both wire formats x every size: attempts, billing, ledger, files.

Nothing paid for is missing (every billed image is on disk and in the ledger); nothing
unpaid is charged (billed=no costs nothing; unknown is counted apart, at list price).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from PIL import Image

import nbp_jupyter as nbp
from nbp_jupyter import pricing, sizes

FAKE_KEY = "fake-key-NBP-FAULT-MATRIX-5e1f"
SCALE = 0.01

# script item -> provider -> (first outcome, HTTP status, billed); None: the job succeeds at once
FAULTS = {
    "503": {"*": ("overloaded", 503, "no")},
    "429:1s": {"*": ("rate_limited", 429, "no")},
    "500": {"*": ("server_error", 500, "no")},
    "504:1": {"*": ("server_error", 504, "no")},
    "502:1": {"*": ("server_error", 502, "no")},
    "hang": {"*": ("timeout", None, "unknown")},
    "drip": {"*": ("timeout", None, "unknown")},
    "disconnect": {"*": ("connection", None, "unknown")},
    "truncated": {"*": ("bad_response", 200, "unknown")},
    "html200:0": {"*": ("bad_response", 200, "unknown")},
    "no_image": {"gemini": ("bad_response", 200, "no"), "openai": ("bad_response", 200, "unknown")},
    "safety": {"gemini": ("blocked", 200, "no"), "openai": ("blocked", 400, "no")},
    "blocked": {"gemini": ("blocked", 200, "no"), "openai": ("blocked", 400, "no")},
    "downgrade": {"*": None},
    "thought": {"*": None},
    "ok": {"*": None},
}
FINAL = {"blocked"}


@pytest.mark.parametrize("size", sizes.RESOLUTIONS)
@pytest.mark.parametrize("provider", ["gemini", "openai"])
@pytest.mark.parametrize("item", list(FAULTS))
def test_fault(home, make_sim, item, provider, size):
    server = make_sim(profile="ideal", time_scale=SCALE, script=f"{item}, ok")
    result = nbp.generate("a fault matrix scene", size=size, provider=provider,
                          base_url=server.url, api_key=FAKE_KEY, time_scale=SCALE,
                          fallback=False, timeout=60)  # 0.6 s real: room for a loaded machine
    expected = FAULTS[item].get(provider, FAULTS[item].get("*"))
    got = [(a.outcome, a.http_status, a.billed) for a in result.attempts]
    if expected is None:
        assert got == [("ok", 200, "yes")]
    elif expected[0] in FINAL:
        assert got == [expected] and not result.success
    else:
        assert got == [expected, ("ok", 200, "yes")]

    # money: billed attempts cost money, unbilled ones nothing, unknown counted apart
    for a in result.attempts:
        assert (a.cost_usd > 0) == (a.billed == "yes"), a
    assert result.cost_usd == pytest.approx(sum(a.cost_usd for a in result.attempts))
    assert result.cost_unknown_usd == pytest.approx(sum(
        pricing.image_price(a.model, a.resolution) for a in result.attempts if a.billed == "unknown"))

    # the ledger says what the result says
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db:
        db.row_factory = sqlite3.Row
        job = db.execute("SELECT * FROM jobs WHERE id=?", (result.job_id,)).fetchone()
        rows = db.execute("SELECT outcome, http_status, billed FROM attempts WHERE job_id=? "
                          "ORDER BY number", (result.job_id,)).fetchall()
    assert job["status"] == ("done" if result.success else "failed")
    assert job["cost_usd"] == pytest.approx(result.cost_usd)
    assert job["cost_unknown_usd"] == pytest.approx(result.cost_unknown_usd)
    assert [tuple(r) for r in rows] == got

    # files: a paid image is on disk, whole; nothing else is
    files = sorted(p for p in (home / "images").rglob("*") if p.is_file())
    if result.success:
        assert files == [result.image_path]
        with Image.open(result.image_path) as image:
            assert image.size == (result.width, result.height)
        want = "2K" if item == "downgrade" and size == "4K" else size
        assert result.resolution == want and result.silent_downgrade == (want != size)
    else:
        assert files == []

    # the key is nowhere
    blob = repr(result) + result.caption() + str(server.log)
    assert FAKE_KEY not in blob
    for path in home.rglob("*"):  # ledger, its WAL, images
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path
