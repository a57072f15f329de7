"""A batch outlives its kernel: killed mid-download, it finishes after a restart with every
image exactly once (a real kernel, a real kill)."""

from __future__ import annotations

from contextlib import closing
import sqlite3
import time

from .kernel import Kernel

SCALE = "0.0001"


def _collected(home) -> tuple[str | None, int]:
    path = home / "ledger.sqlite"
    if not path.exists():
        return None, 0
    with closing(sqlite3.connect(path)) as db, db:
        try:
            state = db.execute("SELECT state FROM batches").fetchone()
            count = db.execute("SELECT COUNT(*) FROM batch_lines WHERE job_id IS NOT NULL"
                               ).fetchone()[0]
        except sqlite3.OperationalError:
            return None, 0
    db.close()
    return (state[0] if state else None), count


def test_kernel_killed_mid_download_finishes_after_restart_with_every_image_once(
        make_sim, tmp_path):
    """A restart in the middle of collecting loses nothing and duplicates nothing."""
    server = make_sim(profile="ideal", time_scale=float(SCALE))
    server.app.batches.line_failure = 0.0
    server.app.batches.script("download", "stall:0.5")  # half the file, then silence
    home = tmp_path / "home"
    kernel = Kernel({"NBP_HOME": str(home), "NBP_TIME_SCALE": SCALE, "NBP_PROVIDER": "gemini",
                     "GEMINI_API_KEY": "test-key", "NBP_BASE_URL": server.url,
                     "NBP_WAIT": "0"})
    try:
        kernel.run("%load_ext nbp_jupyter")
        reply = kernel.run("import nbp_jupyter as nbp\n"
                           "job = nbp.batch([f'shot {i}' for i in range(8)], size='2K', "
                           "display_name='restart', max_response_mb=16)")
        assert reply["status"] == "ok", reply
        deadline = time.monotonic() + 60
        state, count = None, 0
        while time.monotonic() < deadline:
            state, count = _collected(home)
            if state == "collecting" and count:
                time.sleep(0.3)  # let the half that arrived be recorded
                break
            time.sleep(0.05)
        state, count = _collected(home)
        assert state == "collecting" and 0 < count < 8, (state, count)
        kernel.restart()  # kills the process mid-download
        kernel.run("%load_ext nbp_jupyter")  # picks the batch up again, by itself
        deadline = time.monotonic() + 60
        while _collected(home)[0] != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _collected(home) == ("done", 8)
        assert kernel.run("import nbp_jupyter as nbp")["status"] == "ok"
        out = kernel.eval("(lambda j: (j.wait(60), j.state, j.counts))("
                          "nbp.batch_job('restart'))")
        assert out == "(True, 'done', (8, 0, 8))", out
    finally:
        kernel.close()
    images = sorted(p.name for p in (home / "images" / "batches").rglob("*.png"))
    assert len(images) == 8 and len({name.split("-")[0] for name in images}) == 8
    with closing(sqlite3.connect(home / "ledger.sqlite")) as db, db:
        jobs = db.execute("SELECT COUNT(*), COUNT(DISTINCT image_path) FROM jobs").fetchone()
    db.close()
    assert jobs == (8, 8)
    downloads = [m for m in server.app.batches.log if m["path"].startswith("/download/")]
    assert len(downloads) == 2 and int(downloads[1]["range"][6:].rstrip("-")) > 0
    creates = [m for m in server.app.batches.log if m["path"].endswith(":batchGenerateContent")]
    assert len(creates) == 1
