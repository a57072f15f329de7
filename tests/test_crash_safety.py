"""A kernel killed with SIGKILL mid-work: the ledger stays consistent and nothing paid is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

import nbp_jupyter as nbp
from nbp_jupyter.store import Store
from nbp_jupyter.types import Attempt, Request

from .kernel import Kernel


def check_consistent(home) -> dict[str, int]:
    """Every invariant a later session relies on, read with a fresh Store (which recovers)."""
    store = Store(home)
    counts: dict[str, int] = {}
    ledger_images = set()
    for job in store.jobs():
        counts[job["status"]] = counts.get(job["status"], 0) + 1
        attempts = store.attempts(job["id"])
        assert job["status"] in ("done", "failed", "cancelled", "interrupted"), job
        assert all(a["outcome"] != "running" for a in attempts), attempts
        if job["status"] == "done":
            path = job["image_path"]
            assert path and os.path.isfile(path) and not path.endswith(".part")
            with Image.open(path) as image:
                image.verify()
            ledger_images.add(os.path.realpath(path))
            assert attempts[-1]["outcome"] == "ok" and attempts[-1]["billed"] == "yes"
        if job["status"] == "interrupted":
            # unknown cost exactly when an attempt was on the wire; a kill during a backoff
            # wait after an unbilled failure leaves nothing unknown
            cut_off = [a for a in attempts if a["detail"].startswith("interrupted")]
            assert (job["cost_unknown_usd"] > 0) == bool(cut_off), (job, attempts)
            assert job["image_path"] is None
    # every whole image on disk is a done job's (a paid image is never lost to history);
    # a half-written file never has an image's name
    for path in (home / "images").glob("*"):
        if not path.name.endswith(".part"):
            assert path.suffix in (".png", ".jpg", ".webp"), path
            assert os.path.realpath(path) in ledger_images, path
    store.close()
    return counts


def test_sigkill_with_jobs_in_flight_and_images_arriving(tmp_path, make_sim):
    """Kill the kernel at random moments while images arrive; the ledger always reads true."""
    server = make_sim(profile="typical", time_scale=0.01, seed=3)  # a 2K call: ~0.65 s
    home = tmp_path / "home"
    rng = random.Random(5)
    totals: dict[str, int] = {}
    for round_ in range(3):
        kernel = Kernel({"NBP_HOME": str(home), "NBP_PROVIDER": "gemini",
                         "NBP_BASE_URL": server.url, "NBP_API_KEY": "crash-key",
                         "NBP_TIME_SCALE": "0.01", "NBP_WAIT": "never"})
        try:
            kernel.run("import nbp_jupyter as nbp")
            kernel.run(f"jobs = [nbp.submit(f'crash {round_} {{i}}', size='2K') for i in range(12)]")
            # kill right after an image arrives (the first one), at a random offset
            assert kernel.run("import time\nwhile not any(j.done() for j in jobs): "
                              "time.sleep(0.01)", timeout=60)["status"] == "ok"
            time.sleep(rng.uniform(0.0, 0.2))
            pid = kernel.km.provisioner.process.pid
            os.kill(pid, signal.SIGKILL)
            kernel.km.provisioner.process.wait()
        finally:
            kernel.kc.stop_channels()
            kernel.km.cleanup_resources()
        for status, n in check_consistent(home).items():
            totals[status] = n
    assert totals.get("done", 0) > 0, totals  # images did arrive before the kills
    assert totals.get("interrupted", 0) > 0, totals  # and some jobs were cut off


def test_a_half_written_file_is_never_an_image(tmp_path):
    """A '.part' file left by a kill is not listed in the ledger or taken for an image."""
    with Store(tmp_path) as store:
        (store.images / ".20261126-x-1K.png.abc123.part").write_bytes(b"\x89PNG half")
        assert store.jobs() == []
        path = store.save_image("job1", "a prompt", "1K", b"whole")
        assert path.suffix == ".png" and path.read_bytes() == b"whole"
        assert not list(store.images.glob("*job1*.part"))


def test_two_images_of_one_job_at_one_size_each_keep_their_file(tmp_path):
    """Two paid images of one job and size in one second (a hedge's two calls, two refused
    answers) are both on disk: the second does not overwrite the first."""
    with Store(tmp_path) as store:
        for _ in range(5):  # names carry the second: again if a second passed in between
            paths = []
            for data in (b"first", b"second"):
                part = store.images / f".incoming-{data.decode()}.part"
                part.write_bytes(data)
                paths.append(store.adopt_image("001abc", "a kite", "1K", part))
            paths.append(store.save_image("001abc", "a kite", "1K", b"third"))
            if len({path.name[:15] for path in paths}) == 1:
                break
        assert [path.read_bytes() for path in paths] == [b"first", b"second", b"third"]
        assert len(set(paths)) == 3 and not list(store.images.glob(".*"))


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _killed_mid_job(home, job_id: str, *, saved: str | None) -> Store:
    """A job whose kernel died right after its image was saved (`saved` says how far the
    ledger got: 'row', 'file only', or None for still on the wire). Returns the old store."""
    store = Store(home)
    store.begin_job(job_id, Request(prompt="a red kite", size="2K", provider="gemini"), "m")
    store.begin_attempt(job_id, 1, "2K", "m", "gemini", 0.0, 0.134)
    if saved:
        path = store.save_image(job_id, "a red kite", "2K", b"\x89PNG whole")
        if saved == "row":
            store.end_attempt(job_id, Attempt(
                number=1, resolution="2K", model="m", provider="gemini", outcome="ok",
                http_status=200, waited_s=0.0, elapsed_s=3.0, billed="yes", cost_usd=0.134,
                detail="ok", width=2048, height=2048), image_path=path)
    store._write("UPDATE jobs SET pid=? WHERE id=?", (_dead_pid(), job_id))
    return store


@pytest.mark.parametrize("saved", ["row", "file only"])
def test_an_image_saved_before_the_kill_is_a_done_job_after_restart(tmp_path, saved):
    """Killed between the image landing and the job's last row: the paid image is in history."""
    _killed_mid_job(tmp_path, "001abc", saved=saved).close()
    store = Store(tmp_path)  # the next session recovers
    job = store.job("001abc")
    assert job["status"] == "done" and job["error"] is None, job
    assert job["image_path"] and Path(job["image_path"]).read_bytes() == b"\x89PNG whole"
    assert job["resolution"] == "2K" and job["attempts"] == 1
    assert job["cost_usd"] == pytest.approx(0.134) and job["cost_unknown_usd"] == 0
    [attempt] = store.attempts("001abc")
    assert (attempt["outcome"], attempt["billed"]) == ("ok", "yes")
    store.close()


def test_a_hedged_job_credits_the_image_to_the_attempt_of_its_size(tmp_path):
    """Killed with a 4K call and its 2K hedge open, the 2K image saved: the 2K one was paid."""
    store = _killed_mid_job(tmp_path, "001abc", saved="file only")  # attempt 1: 2K, its file
    store.begin_attempt("001abc", 2, "1K", "m", "gemini", 0.0, 0.134)  # a later, other size
    store.close()
    store = Store(tmp_path)
    by_size = {a["resolution"]: (a["outcome"], a["billed"]) for a in store.attempts("001abc")}
    assert by_size == {"2K": ("ok", "yes"), "1K": ("cancelled", "unknown")}
    assert store.job("001abc")["cost_unknown_usd"] == pytest.approx(0.134)
    store.close()


def test_a_job_cut_off_on_the_wire_is_interrupted_with_unknown_cost(tmp_path):
    _killed_mid_job(tmp_path, "001abc", saved=None).close()
    store = Store(tmp_path)
    job = store.job("001abc")
    assert job["status"] == "interrupted" and job["image_path"] is None
    assert job["cost_unknown_usd"] == pytest.approx(0.134) and job["cost_usd"] == 0
    assert store.attempts("001abc")[0]["billed"] == "unknown"
    store.close()


def test_another_jobs_image_is_not_taken_for_a_cut_off_one(tmp_path):
    """A prompt that spells a job id does not lend its image to that job on recovery."""
    store = _killed_mid_job(tmp_path, "001abc", saved=None)
    store.save_image("002def", "a kite 001abc flying", "1K", b"other")
    store.close()
    store = Store(tmp_path)
    assert store.job("001abc")["status"] == "interrupted"
    store.close()


def test_job_ids_stay_unique_across_sessions(home, simulator):
    """Every session counts from 1; an id already in the ledger is never handed out again."""
    store = Store(home)
    for n in range(4096):  # every id the first job of a session could draw
        store.begin_job(f"001{n:03x}", Request(prompt="old"), "m")
    store.close()
    result = nbp.generate("new", provider="sim", base_url=simulator.url, time_scale=0.001)
    assert result.success, result.error
    assert result.job_id.startswith("002")
